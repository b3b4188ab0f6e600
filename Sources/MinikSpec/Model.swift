// The internal model of a cluster: what the user's documents mean once decoded,
// defaulted, validated and placed. Everything below the spec layer reads only this.
// It is Codable because the supervisor keeps it in the cluster's state file.

public enum NodeRole: String, Codable, Sendable {
    case controlPlane = "control-plane"
    case worker
}

public enum OverlayBackend: String, Codable, Sendable, CaseIterable {
    case vxlan
    case hostGW = "host-gw"
}

/// Where something was written: file, line, column (1-based) and the field path.
public struct SourceLocation: Codable, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var field: String

    public init(file: String, line: Int, column: Int, field: String) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
    }

    public var description: String {
        field.isEmpty ? "\(file):\(line):\(column)" : "\(file):\(line):\(column): \(field)"
    }
}

public struct PortMapping: Codable, Sendable, Equatable {
    public var containerPort: Int
    public var hostPort: Int
    public var listenAddress: String
    public var proto: String
}

public struct NodeSpec: Codable, Sendable, Equatable {
    public var name: String
    public var role: NodeRole
    /// Position in the file; the node's podCIDR is the index-th /24 of the pod subnet.
    public var index: Int
    public var labels: [String: String]
    public var podCIDR: IPv4CIDR
    public var internalIP: IPv4Address
    public var extraPortMappings: [PortMapping]
}

public struct EnvVar: Codable, Sendable, Equatable {
    public var name: String
    public var value: String
}

public struct ContainerPort: Codable, Sendable, Equatable {
    public var name: String?
    public var containerPort: Int
    public var proto: String

    public init(name: String?, containerPort: Int, proto: String) {
        self.name = name
        self.containerPort = containerPort
        self.proto = proto
    }
}

public struct ContainerSpec: Codable, Sendable, Equatable {
    public var name: String
    public var image: String
    public var command: [String]
    public var args: [String]
    public var env: [EnvVar]
    public var ports: [ContainerPort]
    public var workingDir: String?
    /// securityContext.privileged: every capability, no seccomp filter.
    public var privileged: Bool = false
    /// securityContext.capabilities.add / drop, as capability names without CAP_.
    public var capabilitiesAdd: [String] = []
    public var capabilitiesDrop: [String] = []
    /// resources.limits.memory in bytes, and pids (minik's own limit, not Kubernetes').
    public var memoryLimit: Int64?
    /// Where the container was written, for errors found later (unknown image...).
    public var source: SourceLocation?
}

public struct PodSpec: Codable, Sendable, Equatable {
    public var namespace: String
    public var name: String
    public var labels: [String: String]
    public var annotations: [String: String]
    /// The node the pod runs on: the one the user named, or the one placement chose.
    public var nodeName: String
    public var requestedNodeName: String?
    public var nodeSelector: [String: String]
    public var containers: [ContainerSpec]
    public var initContainers: [ContainerSpec]
    public var restartPolicy: String
    public var hostname: String?
    public var subdomain: String?
    public var shareProcessNamespace: Bool = false
    /// "Deployment/web" for pods made from a Deployment's template.
    public var owner: String?
    public var source: SourceLocation

    public var key: String { "\(namespace)/\(name)" }
}

public struct NetworkSettings: Codable, Sendable, Equatable {
    public var backend: OverlayBackend
    public var underlaySubnet: IPv4CIDR
    /// MTU of the underlay (node eth0). Pods get mtu - 50 on vxlan (the VXLAN header).
    public var mtu: Int

    public static let vxlanOverhead = 50

    public var podMTU: Int { backend == .vxlan ? mtu - NetworkSettings.vxlanOverhead : mtu }
}

public struct ClusterSpec: Codable, Sendable, Equatable {
    public var name: String
    public var nodes: [NodeSpec]
    public var podSubnet: IPv4CIDR
    public var serviceSubnet: IPv4CIDR
    public var disableDefaultCNI: Bool
    public var kubeProxyMode: String
    public var network: NetworkSettings
    public var namespaces: [String]
    public var pods: [PodSpec]
    /// First delay before a crashed container restarts; it doubles up to 30 s and resets
    /// after the container ran 60 s (kubelet's back-off, with a settable start).
    public var restartBackoffSeconds: Double = 1
    /// Accepted-but-ignored fields and similar notes, each naming its place.
    public var warnings: [String]

    public func node(named name: String) -> NodeSpec? { nodes.first { $0.name == name } }
    public func pods(on node: String) -> [PodSpec] { pods.filter { $0.nodeName == node } }
}
