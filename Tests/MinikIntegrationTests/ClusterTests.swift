// Root integration tests: they run the real `minik` binary, as a user would, against the
// real kernel, in namespaces the clusters create and `down` removes. Every test removes
// its cluster even when it fails (Teardown as a last resort) and then checks that nothing
// of it is left: no namespace, mount, process, state directory. They share the machine
// with whatever clusters its user has up: every command names the test's cluster
// (--name), published ports are ones nobody else uses, and a test removes only the
// cluster it created.
import Foundation
import MinikAPIServer
import MinikRuntime
import MinikSpec
import MinikSupervisor
import Testing

let isRoot = geteuid() == 0

/// Every root test runs one after the other: they share this machine's loopback, its
/// network namespaces and some cluster names.
@Suite("Root integration tests", .serialized, .enabled(if: isRoot, "needs root: creates network namespaces"))
struct RootTests {}

extension RootTests {
@Suite("Clusters (root)", .serialized)
struct ClusterTests {
    @Test("3 nodes: pods reachable by ping and TCP on one node and across nodes", arguments: ["vxlan", "host-gw"])
    func threeNodeCluster(backend: String) throws {
        let name = backend == "vxlan" ? "it-vx" : "it-hgw"
        let spec = try SpecFile("""
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        name: \(name)
        nodes: [{role: control-plane}, {role: worker}, {role: worker}]
        ---
        apiVersion: minik.dev/v1alpha1
        kind: MinikConfig
        network: {backend: \(backend)}
        ---
        \(podYAML("a1", node: "\(name)-worker"))
        ---
        \(podYAML("a2", node: "\(name)-worker"))
        ---
        \(podYAML("b1", node: "\(name)-worker2"))
        ---
        \(podYAML("c1", node: "\(name)-control-plane"))
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 3
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec: {containers: [{name: c, image: busybox, command: [sleep, infinity]}]}
        """)
        try claim(name)
        defer { cleanUp(name) }
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")
        #expect(up.out.contains("is up"))

        // Every pod Running, with an IP inside its node's podCIDR and hostIP = node IP.
        let nodes = try json(minik(["get", "--name", name, "nodes", "-o", "json"]).out)["items"] as! [[String: Any]]
        #expect(nodes.count == 3)
        var cidrs: [String: IPv4CIDR] = [:], hostIPs: [String: String] = [:]
        for n in nodes {
            let nodeName = (n["metadata"] as! [String: Any])["name"] as! String
            cidrs[nodeName] = try IPv4CIDR.parse((n["spec"] as! [String: Any])["podCIDR"] as! String)
            hostIPs[nodeName] = ((n["status"] as! [String: Any])["addresses"] as! [[String: String]]).first { $0["type"] == "InternalIP" }?["address"]
        }
        let pods = try json(minik(["get", "--name", name, "pods", "-o", "json"]).out)["items"] as! [[String: Any]]
        #expect(pods.count == 7)
        var ip: [String: String] = [:]
        for p in pods {
            let podName = (p["metadata"] as! [String: Any])["name"] as! String
            let node = (p["spec"] as! [String: Any])["nodeName"] as! String
            let status = p["status"] as! [String: Any]
            #expect(status["phase"] as? String == "Running")
            let podIP = try #require(status["podIP"] as? String)
            #expect(cidrs[node]?.contains(IPv4Address(podIP)!) == true, "\(podName) \(podIP) outside \(node)'s podCIDR")
            #expect(status["hostIP"] as? String == hostIPs[node])
            ip[podName] = podIP
        }
        let a1 = try #require(ip["a1"]), a2 = try #require(ip["a2"]), b1 = try #require(ip["b1"]), c1 = try #require(ip["c1"])

        // ping: same node, across nodes (worker -> worker, worker -> control-plane), node -> local pod.
        #expect(minik(["exec", "--name", name, "a1", "--", "ping", "-c1", "-W2", a2]).code == 0)
        #expect(minik(["exec", "--name", name, "a1", "--", "ping", "-c1", "-W2", b1]).code == 0)
        #expect(minik(["exec", "--name", name, "b1", "--", "ping", "-c1", "-W2", c1]).code == 0)
        #expect(minik(["node", "exec", "--name", name, "\(name)-worker", "--", "ping", "-c1", "-W2", a1]).code == 0)
        // An address nobody holds does not answer: the checks above can fail.
        #expect(minik(["exec", "--name", name, "a1", "--", "ping", "-c1", "-W1", "10.244.2.250"]).code != 0)

        // TCP: same node and across nodes.
        #expect(tcpEcho(cluster: name, server: "a2", serverIP: a2, client: "a1", port: 7001) == "pong-a2")
        #expect(tcpEcho(cluster: name, server: "b1", serverIP: b1, client: "a1", port: 7002) == "pong-b1")
        #expect(tcpEcho(cluster: name, server: "c1", serverIP: c1, client: "b1", port: 7003) == "pong-c1")

        // The pod's UTS namespace: hostname is the pod name.
        #expect(minik(["exec", "--name", name, "b1", "--", "hostname"]).out.trimmingCharacters(in: .whitespacesAndNewlines) == "b1")

        // Plain iproute2 sees and enters everything.
        let netns = shell(["ip", "netns", "list"]).out
        #expect(netns.contains("minik-\(name).default.a1"))
        #expect(netns.contains("minik-\(name).\(name)-worker"))
        let nodeNS = "minik-\(name).\(name)-worker"
        let routes = shell(["ip", "netns", "exec", nodeNS, "ip", "route"]).out
        if backend == "vxlan" {
            let dev = shell(["ip", "netns", "exec", nodeNS, "ip", "-d", "link", "show", "flannel.1"]).out
            #expect(dev.contains("vxlan id 1"))
            #expect(dev.contains("dstport 8472"))
            #expect(dev.contains("nolearning"))
            let fdb = shell(["ip", "netns", "exec", nodeNS, "bridge", "fdb", "show", "dev", "flannel.1"]).out
            #expect(fdb.contains("dst 172.18.0.2") && fdb.contains("dst 172.18.0.4"))
            #expect(routes.contains("10.244.2.0/24 via 10.244.2.0 dev flannel.1"))
        } else {
            #expect(routes.contains("10.244.2.0/24 via 172.18.0.4 dev eth0"))
            #expect(!shell(["ip", "netns", "exec", nodeNS, "ip", "link"]).out.contains("flannel.1"))
        }
        // The host's root namespace got nothing of the cluster.
        #expect(!shell(["ip", "-o", "addr"]).out.contains("10.244."))
        #expect(!shell(["ip", "route"]).out.contains("10.244."))

        let pids = try ClusterState.load(cluster: name).pods.map(\.pid)
        let down = minik(["down", "--name", name])
        #expect(down.code == 0, "down failed: \(down.err)")
        expectNothingLeft(name, pids: pids)
    }

    @Test("two clusters side by side; a taken name is refused; commands ask which cluster")
    func twoClusters() throws {
        let one = try SpecFile(smallCluster("it-one"))
        let two = try SpecFile(smallCluster("it-two"))
        try claim("it-one"); try claim("it-two")
        defer { cleanUp("it-one"); cleanUp("it-two") }
        try #require(minik(["up", "-q", one.path]).code == 0)
        try #require(minik(["up", "-q", two.path]).code == 0)
        let again = minik(["up", one.path])
        #expect(again.code != 0)
        #expect(again.err.contains("cluster \"it-one\" exists already"))
        let ambiguous = minik(["get", "pods"], unnamed: true)
        #expect(ambiguous.code != 0)
        #expect(ambiguous.err.contains("several clusters are up"))
        // Same pod subnet in both, fully separate: each pod reaches only its own cluster.
        #expect(minik(["exec", "--name", "it-two", "p0", "--", "ping", "-c1", "-W2", "10.244.1.3"]).code == 0)
        #expect(minik(["get", "pods", "--name", "it-one"]).out.contains("p0"))
        #expect(minik(["down", "--name", "it-one"]).code == 0)
        expectNothingLeft("it-one", pids: [])
        // Only it-two is left of the two: with no other cluster up, no --name is needed.
        let others = clustersUp().filter { $0 != "it-two" }
        let unnamed = minik(["get", "pods"], unnamed: true)
        if others.isEmpty {
            #expect(unnamed.out.contains("p1"), "\(unnamed.err)")
        } else {
            #expect(unnamed.code != 0 && unnamed.err.contains("several clusters are up"), "other clusters up: \(others); \(unnamed.err)")
        }
        #expect(minik(["down", "--name", "it-two"]).code == 0)
        expectNothingLeft("it-two", pids: [])
    }

    @Test("down after the supervisor was killed with SIGKILL leaves nothing")
    func downAfterSupervisorKilled() throws {
        let spec = try SpecFile(smallCluster("it-kill"))
        try claim("it-kill")
        defer { cleanUp("it-kill") }
        try #require(minik(["up", "-q", spec.path]).code == 0)
        let state = try ClusterState.load(cluster: "it-kill")
        #expect(kill(state.supervisorPID, SIGKILL) == 0)
        usleep(100_000)
        // The cluster outlives its supervisor.
        #expect(state.pods.allSatisfy { Sandbox.isAlive($0.pid, startTime: $0.startTime) })
        #expect(minik(["exec", "--name", "it-kill", "p0", "--", "ping", "-c1", "-W2", state.pods[1].ip!.description]).code == 0)
        let down = minik(["down", "--name", "it-kill"])
        #expect(down.code == 0, "\(down.err)")
        #expect(down.out.contains("without a supervisor"))
        expectNothingLeft("it-kill", pids: state.pods.map(\.pid) + [state.supervisorPID])
    }

    @Test("a failure halfway through up removes what it made")
    func failureHalfwayRollsBack() throws {
        let spec = try SpecFile(smallCluster("it-fault", pods: 6))
        try claim("it-fault")
        defer { cleanUp("it-fault") }
        let up = minik(["up", spec.path], env: ["MINIK_FAULT": "after-pods:3"])
        #expect(up.code != 0)
        #expect(up.err.contains("injected fault after 3 pods"))
        expectNothingLeft("it-fault", pids: [])
    }

    @Test("bad input is rejected with its place and creates nothing", arguments: badInputs)
    func badInput(_ bad: BadInput) throws {
        let spec = try SpecFile(bad.yaml)
        try claim("it-bad")
        defer { cleanUp("it-bad") }
        // Other clusters up on this machine keep their namespaces (and may add some).
        let before = Set(NetNamespace.list(prefix: "minik-")), others = clustersUp()
        let up = minik(["up", spec.path])
        #expect(up.code != 0)
        #expect(up.err.contains(bad.expected), "stderr was: \(up.err)")
        if bad.line > 0 { #expect(up.err.contains("\(spec.path):\(bad.line):"), "stderr was: \(up.err)") }
        let made = Set(NetNamespace.list(prefix: "minik-")).subtracting(before)
            .filter { ns in !others.contains { ns.hasPrefix(Naming.netnsPrefix($0)) } }
        #expect(made.isEmpty, "namespaces made: \(made.sorted())")
        #expect(!FileManager.default.fileExists(atPath: Naming.clusterDir("it-bad")))
    }

    @Test("not root: a clear error and nothing created")
    func notRoot() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return }
        let spec = try SpecFile(smallCluster("it-user"))
        try claim("it-user")
        defer { cleanUp("it-user") }
        // A copy the unprivileged user can reach wherever the checkout is.
        let binary = spec.dir + "/minik"
        try FileManager.default.copyItem(atPath: minikBinary, toPath: binary)
        chmod(spec.dir, 0o755); chmod(spec.path, 0o644); chmod(binary, 0o755)
        let r = shell(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary, "up", spec.path],
                      env: ["MINIK_IMAGES": ImageStore.located().directory])
        #expect(r.code != 0)
        #expect(r.err.contains("minik up needs root"))
        #expect(NetNamespace.list(prefix: Naming.netnsPrefix("it-user")).isEmpty)
    }
}

}

// MARK: - bad inputs

struct BadInput: Sendable, CustomTestStringConvertible {
    var label: String
    var yaml: String
    var expected: String
    var line: Int
    var testDescription: String { label }
}

let goodHead = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: it-bad\nnodes: [{role: control-plane}, {role: worker}]\n"

let badInputs: [BadInput] = [
    BadInput(label: "malformed YAML", yaml: goodHead + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a\n", expected: "malformed YAML", line: 0),
    BadInput(label: "unknown kind", yaml: goodHead + "---\napiVersion: v1\nkind: Secret\n", expected: "unknown kind \"Secret\"", line: 7),
    BadInput(label: "unknown apiVersion", yaml: "kind: Cluster\napiVersion: kind.x-k8s.io/v1\nname: it-bad\n", expected: "is not valid for kind Cluster", line: 2),
    BadInput(label: "unknown field", yaml: goodHead + "networking: {podSubnett: 10.1.0.0/16}\n", expected: "unknown field \"podSubnett\"", line: 5),
    BadInput(label: "invalid CIDR", yaml: goodHead + "networking: {podSubnet: 10.244.0.0/40}\n", expected: "invalid CIDR", line: 5),
    BadInput(label: "overlapping subnets", yaml: goodHead + "networking: {podSubnet: 10.96.0.0/16}\n", expected: "overlaps podSubnet", line: 0),
    BadInput(label: "podSubnet too small", yaml: goodHead + "networking: {podSubnet: 10.244.0.0/24}\n", expected: "holds 1 node podCIDRs", line: 5),
    BadInput(label: "too many pods on a node", yaml: goodHead + (0...253).map { "---\n" + podYAML("p\($0)", node: "it-bad-worker") }.joined(separator: "\n"),
             expected: "whose podCIDR 10.244.1.0/24 holds 253 pods", line: 0),
    BadInput(label: "duplicate pod", yaml: goodHead + "---\n" + podYAML("a") + "\n---\n" + podYAML("a"), expected: "pod default/a is defined twice", line: 0),
    BadInput(label: "not a DNS-1123 label", yaml: goodHead + "---\n" + podYAML("Web_1"), expected: "is not a DNS-1123 label", line: 0),
    BadInput(label: "nodeName that does not exist", yaml: goodHead + "---\n" + podYAML("a", node: "it-bad-worker7"), expected: "nodeName \"it-bad-worker7\" is not a node", line: 0),
    BadInput(label: "zero nodes", yaml: "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: it-bad\nnodes: []\n", expected: "zero nodes", line: 4),
    BadInput(label: "unknown image", yaml: goodHead + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: nginx:1.25}]\n",
             expected: "unknown image \"nginx:1.25\" (available: agnhost, busybox, minik-dns, netexec, pause)", line: 10),
    BadInput(label: "duplicate container names", yaml: goodHead + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - {name: c, image: busybox}\n  - {name: c, image: busybox}\n",
             expected: "container name \"c\" is used twice", line: 0),
    BadInput(label: "two containers with one containerPort", yaml: goodHead + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - {name: a, image: busybox, ports: [{containerPort: 80}]}\n  - {name: b, image: busybox, ports: [{containerPort: 80}]}\n",
             expected: "containerPort 80/TCP is declared twice", line: 0),
    BadInput(label: "invalid restartPolicy", yaml: goodHead + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  restartPolicy: Sometimes\n  containers: [{name: c, image: busybox}]\n",
             expected: "restartPolicy \"Sometimes\" is not valid", line: 10),
    BadInput(label: "unknown capability", yaml: goodHead + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    securityContext: {capabilities: {add: [NET_ADMN]}}\n",
             expected: "unknown capability \"NET_ADMN\"", line: 13),
    BadInput(label: "invalid resource quantity", yaml: goodHead + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {limits: {memory: 64Mb}}\n",
             expected: "memory quantity \"64Mb\" is not valid", line: 13),
    BadInput(label: "clusterIP outside serviceSubnet", yaml: goodHead + svcYAML("clusterIP: 10.200.0.5"), expected: "clusterIP 10.200.0.5 is outside the serviceSubnet 10.96.0.0/12", line: 10),
    BadInput(label: "clusterIP taken", yaml: goodHead + svcYAML("clusterIP: 10.96.0.50", name: "a") + svcYAML("clusterIP: 10.96.0.50", name: "b"),
             expected: "clusterIP 10.96.0.50 is already taken by service default/a", line: 18),
    BadInput(label: "nodePort out of range", yaml: goodHead + svcYAML("type: NodePort", port: "nodePort: 40000"), expected: "nodePort 40000 is out of range (30000-32767)", line: 13),
    BadInput(label: "nodePort taken", yaml: goodHead + svcYAML("type: NodePort", name: "a", port: "nodePort: 30080") + svcYAML("type: NodePort", name: "b", port: "nodePort: 30080"),
             expected: "nodePort 30080/TCP is already taken by service default/a", line: 22),
    BadInput(label: "duplicate service port names", yaml: goodHead + "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: a}\n  ports: [{name: http, port: 80}, {name: http, port: 81}]\n",
             expected: "port name \"http\" is used twice", line: 11),
    BadInput(label: "service protocol", yaml: goodHead + svcYAML("selector: {app: a}", port: "protocol: SCTP"), expected: "protocol \"SCTP\" is not supported (use TCP or UDP)", line: 13),
    BadInput(label: "service selector is not a mapping", yaml: goodHead + svcYAML("selector: [app, a]"), expected: "must be a mapping of strings", line: 10),
    BadInput(label: "cluster name too long", yaml: "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: it-bad-but-long\n", expected: "may have at most 11", line: 3),
]

// MARK: - helpers

func podYAML(_ name: String, node: String? = nil) -> String {
    """
    apiVersion: v1
    kind: Pod
    metadata: {name: \(name)}
    spec:
      \(node.map { "nodeName: \($0)" } ?? "restartPolicy: Always")
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
    """
}

/// A Service document (after "---"): `extra` is one more line of its spec, `port` one
/// more field of its only port (port 80).
func svcYAML(_ extra: String, name: String = "s", port: String? = nil) -> String {
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: \(name)}\nspec:\n  \(extra)\n  ports:\n  - port: 80\n"
        + (port.map { "    \($0)\n" } ?? "")
}

func smallCluster(_ name: String, pods: Int = 2) -> String {
    "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: \(name)\nnodes: [{role: control-plane}, {role: worker}]\n"
        + (0..<pods).map { "---\n" + podYAML("p\($0)") + "\n" }.joined()
}

/// A spec written to a fresh temporary directory, removed with the value.
final class SpecFile {
    let dir: String
    let path: String

    init(_ text: String) throws {
        dir = NSTemporaryDirectory() + "minik-it-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        path = dir + "/cluster.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Rewrites the file with one text replaced.
    func replace(_ old: String, with new: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: old, with: new).write(toFile: path, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }
}

/// The minik binary SwiftPM built beside this test bundle.
let minikBinary: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // On Linux the test runner is .build/<config>/minikPackageTests.xctest.
    if !FileManager.default.fileExists(atPath: dir.appendingPathComponent("minik").path) { dir = dir.deletingLastPathComponent() }
    // Every minik and kubectl the tests start (they inherit this) uses the tests' own
    // kubeconfig, never the user's.
    setenv("KUBECONFIG", testKubeconfig, 1)
    return dir.appendingPathComponent("minik").path
}()

/// The kubeconfig the tests' clusters merge into; removed when no cluster uses it.
let testKubeconfig = "/tmp/minik-tests-\(getpid()).kubeconfig"

struct Result {
    var code: Int32
    var out: String
    var err: String
}

func shell(_ argv: [String], env: [String: String] = [:]) -> Result {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
    p.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
    p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    do { try p.run() } catch { return Result(code: -1, out: "", err: "\(error)") }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Result(code: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
}

/// `minik <args>`. A command that acts on a cluster must name it (`--name`, before any
/// `--`): other clusters may be up, a user's among them, that a test must not act on
/// (nor fail because of). `unnamed` is for the checks of what minik does without it.
func minik(_ args: [String], env: [String: String] = [:], unnamed: Bool = false,
           sourceLocation: Testing.SourceLocation = #_sourceLocation) -> Result {
    let options = args.prefix { $0 != "--" }
    if let command = args.first, clusterCommands.contains(command),
       !(command == "get" && ["clusters", "cluster"].contains(args.dropFirst().first)) {
        if options.contains("--all") {
            Issue.record("minik \(args.joined(separator: " ")): a test removes only its own cluster", sourceLocation: sourceLocation)
        } else if !unnamed && !options.contains(where: { $0 == "--name" || $0.hasPrefix("--name=") }) {
            Issue.record("minik \(args.joined(separator: " ")) names no cluster: add --name", sourceLocation: sourceLocation)
        }
    }
    let r = shell([minikBinary] + args, env: env)
    // The last cluster gone: the tests' kubeconfig goes too.
    if args.first == "down" { Kubeconfig.removeIfEmpty(testKubeconfig) }
    return r
}

/// The subcommands that act on one cluster (ClusterOption).
let clusterCommands: Set<String> = ["fault", "pingall", "capture", "trace", "graph", "down", "get", "describe", "logs", "exec", "port-forward", "apply", "delete", "scale", "node", "external"]

/// The clusters up on this machine, the test's and anyone else's.
func clustersUp() -> [String] {
    minik(["get", "clusters"]).out.split(separator: "\n").map(String.init)
}

/// Fails the test unless no cluster of this name is up: one that is (a user's, or one a
/// killed test run left) is not the test's to use or remove.
func claim(_ name: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
    try #require(!FileManager.default.fileExists(atPath: Naming.clusterDir(name)),
                 "a cluster named \"\(name)\" is up already; remove it with `sudo minik down --name \(name)` if it is a test's leftover",
                 sourceLocation: sourceLocation)
}

/// A cluster's state as its supervisor has it now (nil when none answers).
func liveState(_ cluster: String) -> ClusterState? {
    ControlSocket.call(path: Naming.socketPath(cluster), ControlRequest(op: .status), timeout: 5)?.state
}

/// The pods of a Deployment (<name>-<hash>-<random>), in the order its ReplicaSets made
/// them (which is also the order placement spread them over the nodes); terminating ones
/// left out.
func deploymentPods(_ cluster: String, _ deployment: String, namespace: String = "default") -> [String] {
    guard let s = liveState(cluster) else { return [] }
    // Running and not terminating (a pod just stopped may still be in the spec a moment).
    let live = Set(s.pods.filter { $0.deletionTimestamp == nil }.map(\.key))
    return s.spec.pods.filter { $0.owner == "Deployment/\(deployment)" && $0.namespace == namespace && live.contains($0.key) }.map(\.name)
}

func json(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

/// Starts `nc -l` in the server pod answering "pong-<server>", connects from the client
/// pod, returns what the client read ("" if it never connected).
func tcpEcho(cluster: String, server: String, serverIP: String, client: String, port: Int) -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: minikBinary)
    p.arguments = ["exec", "--name", cluster, server, "--", "busybox", "nc", "-l", "-p", "\(port)", "-e", "echo", "pong-\(server)"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return "" }
    defer { if p.isRunning { p.terminate() } }
    for _ in 0..<30 {
        let r = minik(["exec", "--name", cluster, client, "--", "busybox", "nc", "-w", "2", serverIP, "\(port)"])
        let text = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        if !text.isEmpty { return text }
        usleep(100_000)
    }
    return ""
}

/// Removes a test's cluster whatever state it is in.
func cleanUp(_ name: String) {
    if FileManager.default.fileExists(atPath: Naming.clusterDir(name)) {
        _ = minik(["down", "--name", name])
    }
    Teardown.destroy(cluster: name)
}

/// Nothing of the cluster is left: namespaces, mounts, processes, state directory.
func expectNothingLeft(_ name: String, pids: [Int32], sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    #expect(NetNamespace.list(prefix: Naming.netnsPrefix(name)).isEmpty, "namespaces left", sourceLocation: sourceLocation)
    #expect(!FileManager.default.fileExists(atPath: Naming.clusterDir(name)), "state directory left", sourceLocation: sourceLocation)
    let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
    #expect(!mounts.contains(Naming.netnsPrefix(name)), "mounts left", sourceLocation: sourceLocation)
    for pid in pids where pid > 0 {
        // Gone, or a zombie waiting for an init that does not reap: not running either way.
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let state = stat.lastIndex(of: ")").map { stat[stat.index($0, offsetBy: 2)] }
        #expect(state == nil || state == "Z", "process \(pid) still running", sourceLocation: sourceLocation)
    }
    let running = shell(["ps", "-eo", "stat=,args="]).out.split(separator: "\n").filter { !$0.hasPrefix("Z") }
    #expect(!running.contains { $0.contains("__supervise --name \(name) ") }, "supervisor still running", sourceLocation: sourceLocation)
    #expect(!shell(["ip", "-o", "link"]).out.contains("br-\(name)"), "links in the root namespace", sourceLocation: sourceLocation)
}
