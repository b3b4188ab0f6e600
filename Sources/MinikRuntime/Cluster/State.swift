// What a running cluster is, as the supervisor records it in /run/minik/<name>/state.json
// (written atomically after every change). The CLI reads it to find pods and nodes even
// when the supervisor is gone, and `down` uses it with the namespace scan to clean up.
import Foundation
import MinikSpec

public struct NodeState: Codable, Sendable {
    public var name: String
    public var role: NodeRole
    public var index: Int
    public var netns: String
    public var internalIP: IPv4Address
    public var podCIDR: IPv4CIDR
    public var labels: [String: String]
    public var createdAt: Date
}

public enum PodPhase: String, Codable, Sendable {
    case pending = "Pending"
    case running = "Running"
    /// Every container ended and none restarts (restartPolicy Never or OnFailure):
    /// Succeeded when all exited 0, else Failed.
    case succeeded = "Succeeded"
    case failed = "Failed"
}

/// A container as `get pods` and `describe` show it (Kubernetes' ContainerStatus).
public struct ContainerStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable { case waiting, running, terminated }

    public struct Termination: Codable, Sendable, Equatable {
        public var exitCode: Int32
        public var signal: Int32?
        public var reason: String
        public var message: String?
        public var startedAt: Date?
        public var finishedAt: Date
    }

    public var name: String
    public var image: String
    public var isInit: Bool
    public var state: State
    /// waiting: ContainerCreating, PodInitializing, CrashLoopBackOff, RunContainerError;
    /// terminated: Completed, Error.
    public var reason: String?
    public var message: String?
    public var pid: Int32
    public var startTime: UInt64
    public var startedAt: Date?
    public var restartCount: Int
    public var lastTermination: Termination?
    /// Terminated now (the current state's details).
    public var termination: Termination?
    /// The next start, while waiting in back-off.
    public var nextStart: Date?
    /// Running and passing its readiness probe (or running, without one).
    public var ready: Bool = false
    /// The last probe failure, as kubelet words it in events.
    public var probeMessage: String?
    /// An ephemeral container's (optional: states saved before they existed lack it).
    public var isEphemeral: Bool?

    public var isRunning: Bool { state == .running }
    public var ephemeral: Bool { isEphemeral == true }
}

public struct PodEvent: Codable, Sendable, Equatable {
    public var time: Date
    public var type: String // Normal or Warning
    public var reason: String
    public var message: String
}

public struct PodState: Codable, Sendable, Equatable {
    public var namespace: String
    public var name: String
    public var node: String
    public var ip: IPv4Address?
    public var netns: String
    public var pid: Int32
    public var startTime: UInt64
    public var hostVeth: String
    public var createdAt: Date
    public var phase: PodPhase
    public var message: String?
    public var labels: [String: String]
    public var owner: String?
    public var containers: [ContainerStatus]
    /// The latest events (at most 100 are kept).
    public var events: [PodEvent] = [] {
        didSet { if events.count > 100 { events.removeFirst(events.count - 100) } }
    }

    /// Set when the pod is being deleted (graceful: its containers got SIGTERM and have
    /// until then + the grace period before SIGKILL); `get pods` shows Terminating.
    public var deletionTimestamp: Date?
    public var deletionGracePeriodSeconds: Int?

    public var key: String { "\(namespace)/\(name)" }

    public var appContainers: [ContainerStatus] { containers.filter { !$0.isInit && !$0.ephemeral } }
    public var initContainers: [ContainerStatus] { containers.filter(\.isInit) }
    public var restarts: Int { appContainers.reduce(0) { $0 + $1.restartCount } }
    public var readyText: String { "\(appContainers.filter { $0.isRunning && $0.ready }.count)/\(appContainers.count)" }
    /// The pod's Ready condition: running, and every app container ready.
    public var isReady: Bool {
        phase == .running && deletionTimestamp == nil && !appContainers.isEmpty && appContainers.allSatisfy { $0.isRunning && $0.ready }
    }
    /// kubelet's ContainersNotReady message.
    public var notReadyReason: String {
        if phase != .running { return "pod is \(statusText)" }
        let names = appContainers.filter { !($0.isRunning && $0.ready) }.map(\.name)
        return "containers with unready status: [\(names.joined(separator: " "))]"
    }

    /// The STATUS column, derived as kubectl derives it.
    public var statusText: String {
        if deletionTimestamp != nil { return "Terminating" }
        if phase == .pending { return "Pending" }
        let inits = initContainers
        if let i = inits.firstIndex(where: { !($0.state == .terminated && $0.termination?.exitCode == 0) }) {
            let c = inits[i]
            if c.state == .waiting, let r = c.reason, r != "PodInitializing" && r != "ContainerCreating" { return "Init:\(r)" }
            if c.state == .terminated, let r = c.termination?.reason { return "Init:\(r)" }
            return "Init:\(i)/\(inits.count)"
        }
        var status = phase == .running ? "Running" : phase.rawValue
        for c in appContainers.reversed() {
            if c.state == .waiting, let r = c.reason { status = r }
            else if c.state == .terminated, let r = c.termination?.reason { status = r }
        }
        if appContainers.contains(where: \.isRunning) && status == "Completed" { status = "Running" }
        return status
    }
}

/// The service proxy in one node: what it last did.
public struct ProxyNodeStatus: Codable, Sendable {
    public var node: String
    public var syncs: Int = 0
    public var lastSync: Date?
    /// Wall time of the last iptables-restore that changed something, in ms.
    public var lastSyncMillis: Double = 0
    public var lastChangedChains: Int = 0
    /// The last sync rewrote the nat and filter tables whole (fresh node, repair, big change).
    public var lastFull: Bool = false
    /// Rendering the whole rule set (for every node at once), in ms.
    public var lastRenderMillis: Double = 0
    public var rules: Int = 0
    public var chains: Int = 0
    public var repairs: Int = 0
    public var lastError: String?

    public init(node: String) { self.node = node }
}

public struct ClusterState: Codable, Sendable {
    public var name: String
    public var spec: ClusterSpec
    public var specFile: String
    public var supervisorPID: Int32
    public var supervisorStartTime: UInt64
    public var createdAt: Date
    public var nodes: [NodeState]
    public var pods: [PodState]
    public var services: [ServiceState] = []
    public var proxy: [ProxyNodeStatus] = []
    /// When the supervisor wrote this (it writes within a second of every change).
    public var savedAt: Date?
    /// Where the cluster's Kubernetes API listens ("https://127.0.0.1:PORT").
    public var apiServer: String?
    /// The API store's last resourceVersion (an adopting supervisor goes on from it).
    public var apiRevision: Int64?
    /// The controllers' events about Deployments and ReplicaSets (pods keep their own).
    public var events: [ControllerEvent]? = nil
    /// Objects only the API has (ConfigMaps), as JSON by "resource/namespace/name".
    public var apiObjects: [String: String]? = nil

    public func pod(_ name: String, namespace: String) -> PodState? {
        pods.first { $0.name == name && $0.namespace == namespace }
    }

    public static func load(cluster: String) throws(RuntimeError) -> ClusterState {
        let path = Naming.stateFile(cluster)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .state("cluster \"\(cluster)\" has no state file (\(path)); is it up?")
        }
        do { return try decoder.decode(ClusterState.self, from: data) } catch {
            throw .state("cannot read \(path): \(error)")
        }
    }

    /// Writes the state atomically (temp file + rename).
    public func save() throws(RuntimeError) {
        try ClusterState.write(try encoded(), cluster: name)
    }

    /// The state file's content.
    public func encoded() throws(RuntimeError) -> Data {
        do { return try ClusterState.encoder.encode(self) } catch { throw .state("cannot encode the state of \(name): \(error)") }
    }

    /// Writes encoded state atomically (temp file + rename).
    public static func write(_ data: Data, cluster: String) throws(RuntimeError) {
        let path = Naming.stateFile(cluster)
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw .state("cannot write \(path): \(error)")
        }
    }

    /// Compact and unsorted: the state is written before every write is answered, and
    /// pretty, sorted output cost most of that time (`jq . state.json` reads it).
    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.dateEncodingStrategy = preciseDates
        return e
    }

    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = preciseDateParsing
        return d
    }

    /// ISO 8601 with microseconds: restart latencies are read from these times.
    public static let preciseDates = JSONEncoder.DateEncodingStrategy.custom { date, encoder in
        var c = encoder.singleValueContainer()
        try c.encode(ClusterState.isoString(date))
    }

    /// "2026-11-21T09:31:25.123456Z", with gmtime_r: a formatter per date cost more
    /// than the rest of writing the state file.
    public static func isoString(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        let seconds = t.rounded(.down)
        var secs = time_t(seconds)
        var tm = tm()
        gmtime_r(&secs, &tm)
        let micros = Int(microseconds(date) % 1_000_000)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        let m = String(micros)
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2))."
            + String(repeating: "0", count: 6 - m.count) + m + "Z"
    }

    /// Microseconds since 1970, truncated as the state file writes them: what identifies
    /// a moment across a save and a load (uids are made from it).
    public static func microseconds(_ date: Date) -> Int64 {
        let t = date.timeIntervalSince1970
        let seconds = t.rounded(.down)
        return Int64(seconds) * 1_000_000 + Int64(min(((t - seconds) * 1_000_000).rounded(.down), 999_999))
    }

    public static let preciseDateParsing = JSONDecoder.DateDecodingStrategy.custom { decoder in
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let date = parseISO(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad date \(text)"))
        }
        return date
    }

    /// Parses what isoString writes ("2026-11-21T09:31:25.123456Z", fraction optional),
    /// by hand with timegm: a date formatter per date made reading a state with
    /// thousands of services take most of a second.
    public static func parseISO(_ text: String) -> Date? {
        let u = Array(text.utf8)
        guard u.count >= 20, u.last == 90 /* Z */ else { return nil }
        func num(_ from: Int, _ len: Int) -> Int32? {
            var v: Int32 = 0
            for i in from..<(from + len) {
                let c = u[i]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int32(c - 48)
            }
            return v
        }
        guard let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2), let h = num(11, 2), let mi = num(14, 2), let sec = num(17, 2),
              u[4] == 45, u[7] == 45, u[10] == 84, u[13] == 58, u[16] == 58 else { return nil }
        var t = tm()
        t.tm_year = y - 1900
        t.tm_mon = mo - 1
        t.tm_mday = d
        t.tm_hour = h
        t.tm_min = mi
        t.tm_sec = sec
        let seconds = timegm(&t)
        var fraction = 0.0
        if u[19] == 46 /* . */ {
            var scale = 0.1
            for c in u[20..<(u.count - 1)] {
                guard c >= 48 && c <= 57 else { return nil }
                fraction += Double(c - 48) * scale
                scale /= 10
            }
            // Half of the last digit's unit: a Double of 1.8e9 seconds is exact to about
            // 0.24 us only, so without it the fraction could truncate to one less.
            fraction += 5 * scale
        }
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }
}
