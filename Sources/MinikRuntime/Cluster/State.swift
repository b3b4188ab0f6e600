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
    case failed = "Failed"
    case unknown = "Unknown"
}

public struct PodState: Codable, Sendable {
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
    public var containers: [String]

    public var key: String { "\(namespace)/\(name)" }
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
        let path = Naming.stateFile(name)
        do {
            let data = try ClusterState.encoder.encode(self)
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .state("cannot write \(path): \(error)")
        }
    }

    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }

    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }
}
