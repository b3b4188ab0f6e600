// Root tests of the races a clumsy user (or a killed terminal) makes: each runs the race
// many times and checks that nothing leaks, nothing reported gone lives on, and a refusal
// changes nothing. Timings are random within the window where `up` is building.
import Foundation
import MinikRuntime
import MinikSpec
import Testing

extension RootTests {
@Suite("Races: up, down, kills and interrupts (root)", .serialized)
struct RaceTests {
    static let cluster = "it-race"
    static let yaml = """
    kind: Cluster
    apiVersion: kind.x-k8s.io/v1alpha4
    name: it-race
    nodes: [{role: control-plane}, {role: worker}]
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 6
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: c, image: busybox, command: [sleep, infinity]}]}
    """

    /// Namespaces, state directory, supervisor and lock file of the test's cluster.
    func leftovers() -> [String] {
        var out = NetNamespace.list(prefix: Naming.netnsPrefix(Self.cluster)).prefix(3).map { "netns \($0)" }
        if FileManager.default.fileExists(atPath: Naming.clusterDir(Self.cluster)) { out.append("state directory") }
        if !Cgroups.processes(cluster: Self.cluster).isEmpty { out.append("processes in its cgroups") }
        if supervisor() != nil { out.append("supervisor") }
        return out
    }

    func supervisor() -> Int32? {
        let ps = shell(["ps", "-eo", "pid=,stat=,args="]).out.split(separator: "\n")
        return ps.first { $0.contains("__supervise --name \(Self.cluster) ") && !$0.split(separator: " ", omittingEmptySubsequences: true)[1].hasPrefix("Z") }
            .flatMap { Int32($0.split(separator: " ", omittingEmptySubsequences: true)[0]) }
    }

    /// Running pause processes (any cluster's: the test compares before and after).
    func pauses() -> Set<Int32> {
        Set(shell(["ps", "-eo", "pid=,stat=,comm="]).out.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            return f.count == 3 && f[2] == "pause" && !f[1].hasPrefix("Z") ? Int32(f[0]) : nil
        })
    }

    func startUp(_ spec: SpecFile) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: minikBinary)
        p.arguments = ["up", "-q", spec.path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    @Test("up and down of one cluster at once: down waits or finds nothing, never reports what it did not do", arguments: [0.0, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.45])
    func upAgainstDown(delay: Double) throws {
        try claim(Self.cluster)
        let spec = try SpecFile(Self.yaml)
        defer { cleanUp(Self.cluster) }
        let up = try startUp(spec)
        usleep(useconds_t(delay * 1_000_000))
        let down = minik(["down", "--name", Self.cluster])
        up.waitUntilExit()
        if down.code == 0 {
            #expect(down.out.contains("Deleted cluster"))
            #expect(leftovers().isEmpty, "down reported the cluster deleted; left: \(leftovers())")
        } else {
            // down came first and found nothing: up then built the whole cluster.
            #expect(down.err.contains("no cluster named \"\(Self.cluster)\""), "\(down.err)")
            #expect(up.terminationStatus == 0)
            #expect(minik(["get", "pods", "--name", Self.cluster]).out.components(separatedBy: "Running").count - 1 == 6)
            #expect(minik(["down", "--name", Self.cluster]).code == 0)
            #expect(leftovers().isEmpty)
        }
        #expect(!FileManager.default.fileExists(atPath: ClusterLock.path(Self.cluster)), "the lock file is left")
    }

    @Test("the supervisor killed during up: down finds every process it started, pause included", arguments: [0.04, 0.08, 0.12, 0.16, 0.2, 0.25])
    func supervisorKilledDuringUp(delay: Double) throws {
        try claim(Self.cluster)
        let spec = try SpecFile(Self.yaml)
        defer { cleanUp(Self.cluster) }
        let before = pauses()
        let up = try startUp(spec)
        usleep(useconds_t(delay * 1_000_000))
        var killed = false
        if let pid = supervisor() { kill(pid, SIGKILL); killed = true }
        up.waitUntilExit()
        if up.terminationStatus == 0 { _ = minik(["down", "--name", Self.cluster]) }
        #expect(leftovers().isEmpty, "killed=\(killed): \(leftovers())")
        usleep(100_000)
        let leaked = pauses().subtracting(before)
        #expect(leaked.isEmpty, "pause processes left running: \(leaked)")
    }

    @Test("up or a supervisor started for a live cluster whose directory is gone: refused, and nothing of it is touched")
    func refusalChangesNothing() throws {
        try claim(Self.cluster)
        let spec = try SpecFile(Self.yaml)
        defer { cleanUp(Self.cluster) }
        try #require(minik(["up", "-q", spec.path]).code == 0)
        let state = try ClusterState.load(cluster: Self.cluster)
        let sup = try #require(supervisor())
        kill(sup, SIGKILL)
        #expect(waitFor { supervisor() == nil })
        try FileManager.default.removeItem(atPath: Naming.clusterDir(Self.cluster))
        let namespaces = NetNamespace.list(prefix: Naming.netnsPrefix(Self.cluster))
        let again = minik(["up", spec.path])
        #expect(again.code != 0 && again.err.contains("exist already"), "\(again.err)")
        let byHand = minik(["__supervise", "--name", Self.cluster, "--spec", spec.path])
        #expect(byHand.code != 0 && byHand.out.contains("refused: "), "\(byHand.out)")
        // Every pod's sandbox and container still runs, every namespace is still there.
        #expect(NetNamespace.list(prefix: Naming.netnsPrefix(Self.cluster)) == namespaces)
        for p in state.pods {
            #expect(Sandbox.isAlive(p.pid, startTime: p.startTime), "pause of \(p.key) was killed")
            for c in p.containers { #expect(Sandbox.isAlive(c.pid, startTime: c.startTime), "\(p.key)/\(c.name) was killed") }
        }
        // down still finds and removes it all.
        let down = minik(["down", "--name", Self.cluster])
        #expect(down.code == 0, "\(down.err)")
        #expect(leftovers().isEmpty, "\(leftovers())")
    }

    @Test("Ctrl-C of up rolls everything back", arguments: [0.02, 0.06, 0.1, 0.14, 0.18, 0.24])
    func interruptedUp(delay: Double) throws {
        try claim(Self.cluster)
        let spec = try SpecFile(Self.yaml)
        defer { cleanUp(Self.cluster) }
        let before = pauses()
        let up = try startUp(spec)
        usleep(useconds_t(delay * 1_000_000))
        kill(up.processIdentifier, SIGINT)
        up.waitUntilExit()
        if up.terminationStatus == 0 {
            // It was ready first: a cluster that is up, as reported.
            #expect(minik(["get", "nodes", "--name", Self.cluster]).code == 0)
            #expect(minik(["down", "--name", Self.cluster]).code == 0)
        } else {
            #expect(up.terminationStatus == 130)
        }
        #expect(leftovers().isEmpty, "\(leftovers())")
        #expect(pauses().subtracting(before).isEmpty)
    }

    @Test("up killed: its supervisor builds the cluster anyway and serves it", arguments: [0.0, 0.01, 0.03, 0.1])
    func killedUp(delay: Double) throws {
        try claim(Self.cluster)
        let spec = try SpecFile(Self.yaml)
        defer { cleanUp(Self.cluster) }
        let up = try startUp(spec)
        usleep(useconds_t(delay * 1_000_000))
        kill(up.processIdentifier, SIGKILL)
        up.waitUntilExit()
        usleep(300_000)
        if supervisor() == nil && NetNamespace.list(prefix: Naming.netnsPrefix(Self.cluster)).isEmpty {
            // Killed before it started a supervisor: nothing runs, and whatever it left
            // (its directory) does not stand in the way of the next `up`.
            #expect(minik(["up", "-q", spec.path]).code == 0)
        }
        #expect(waitFor { minik(["get", "pods", "--name", Self.cluster]).out.components(separatedBy: "Running").count - 1 == 6 })
        #expect(supervisor() != nil)
        #expect(minik(["down", "--name", Self.cluster]).code == 0)
        #expect(leftovers().isEmpty, "\(leftovers())")
    }
}
}
