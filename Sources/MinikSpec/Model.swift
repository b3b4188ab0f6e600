// The internal model of a cluster: what the user's documents mean once decoded,
// defaulted, validated and placed. Everything below the spec layer reads only this.
// It is Codable because the supervisor keeps it in the cluster's state file.

import Foundation

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

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
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
    /// resources.limits.ephemeral-storage: the size of the writable layer.
    public var ephemeralStorageLimit: Int64?
    /// Where the container was written, for errors found later (unknown image...).
    public var source: SourceLocation?
    /// readinessProbe: while it fails the pod is not ready and no Service sends it traffic.
    public var readinessProbe: Probe?
    /// livenessProbe: when it fails failureThreshold times the container is restarted.
    public var livenessProbe: Probe?
    /// Directories of the cluster's state directory bind-mounted into the container. Only
    /// minik's own system pods have them (the cluster DNS reads its zone from one); a
    /// user's YAML cannot set this.
    public var clusterDirMounts: [ClusterDirMount] = []
    /// stdin: the container's stdin stays open for `kubectl attach` (a pipe the runtime
    /// holds); stdinOnce: closed after the first attach ends; tty: a terminal of its own
    /// devpts as stdin, stdout and stderr.
    public var stdin = false
    public var stdinOnce = false
    public var tty = false
    /// An ephemeral container's targetContainerName: it joins that container's PID namespace.
    public var targetContainerName: String?

    public init(name: String, image: String, command: [String], args: [String], env: [EnvVar], ports: [ContainerPort],
                workingDir: String?, source: SourceLocation?) {
        self.name = name
        self.image = image
        self.command = command
        self.args = args
        self.env = env
        self.ports = ports
        self.workingDir = workingDir
        self.source = source
    }

    enum CodingKeys: String, CodingKey {
        case name, image, command, args, env, ports, workingDir, privileged, capabilitiesAdd, capabilitiesDrop
        case memoryLimit, ephemeralStorageLimit, source, readinessProbe, livenessProbe, clusterDirMounts
        case stdin, stdinOnce, tty, targetContainerName
    }
}

/// <cluster state dir>/<subpath> bind-mounted at mountPath in a container.
public struct ClusterDirMount: Codable, Sendable, Equatable {
    public var subpath: String
    public var mountPath: String
    public var readOnly: Bool

    public init(subpath: String, mountPath: String, readOnly: Bool) {
        self.subpath = subpath
        self.mountPath = mountPath
        self.readOnly = readOnly
    }
}

/// A port by number or by the name a container gives it (IntOrString in Kubernetes).
public enum PortRef: Codable, Sendable, Equatable, CustomStringConvertible {
    case number(Int)
    case name(String)

    public var description: String {
        switch self {
        case .number(let n): return String(n)
        case .name(let s): return s
        }
    }

    /// A probe's port: looked up in its own container by name only, as kubelet's
    /// findPortByName does.
    public func resolve(in container: ContainerSpec) -> Int? {
        switch self {
        case .number(let n): return n
        case .name(let s): return container.ports.first { $0.name == s }?.containerPort
        }
    }

    /// A service's targetPort in a pod: the port of that protocol some container declares
    /// under the name, or nil.
    public func resolve(in pod: PodSpec, proto: String = "TCP") -> Int? {
        switch self {
        case .number(let n): return n
        case .name(let s):
            return pod.containers.lazy.flatMap(\.ports).first { $0.name == s && $0.proto == proto }?.containerPort
        }
    }
}

/// A container probe, with the Kubernetes defaults (period 10 s, timeout 1 s, success
/// threshold 1, failure threshold 3, no initial delay).
public struct Probe: Codable, Sendable, Equatable {
    public enum Action: Codable, Sendable, Equatable {
        case exec([String])
        case httpGet(path: String, port: PortRef)
        case tcpSocket(port: PortRef)
    }

    public var action: Action
    public var initialDelaySeconds: Double = 0
    public var periodSeconds: Double = 10
    public var timeoutSeconds: Double = 1
    public var successThreshold: Int = 1
    public var failureThreshold: Int = 3

    public init(action: Action) { self.action = action }

    public var summary: String {
        let what: String
        switch action {
        case .exec(let argv): what = "exec [\(argv.joined(separator: " "))]"
        case .httpGet(let path, let port): what = "http-get http://:\(port)\(path)"
        case .tcpSocket(let port): what = "tcp-socket :\(port)"
        }
        func s(_ d: Double) -> String { d == d.rounded() ? "\(Int(d))s" : "\(d)s" }
        return "\(what) delay=\(s(initialDelaySeconds)) timeout=\(s(timeoutSeconds)) period=\(s(periodSeconds)) #success=\(successThreshold) #failure=\(failureThreshold)"
    }
}

public enum ServiceType: String, Codable, Sendable, CaseIterable {
    case clusterIP = "ClusterIP"
    case nodePort = "NodePort"
    case loadBalancer = "LoadBalancer"
    case externalName = "ExternalName"
}

public struct ServicePort: Codable, Sendable, Equatable {
    /// Required (a DNS label) when the service has more than one port.
    public var name: String
    public var proto: String
    public var port: Int
    public var targetPort: PortRef
    /// NodePort and LoadBalancer services: the port on every node (30000-32767).
    public var nodePort: Int?

    public init(name: String, proto: String, port: Int, targetPort: PortRef, nodePort: Int? = nil) {
        self.name = name
        self.proto = proto
        self.port = port
        self.targetPort = targetPort
        self.nodePort = nodePort
    }
}

/// A Service's externalTrafficPolicy or internalTrafficPolicy.
public enum TrafficPolicy: String, Codable, Sendable {
    case cluster = "Cluster"
    case local = "Local"
}

/// A Service: a virtual IP (and node ports) in front of the ready pods its selector picks.
public struct ServiceSpec: Codable, Sendable, Equatable {
    public static let nodePortRange = 30000...32767
    public static let defaultAffinityTimeout = 10800

    public var namespace: String
    public var name: String
    public var labels: [String: String] = [:]
    /// metadata.annotations (kubectl's last-applied-configuration among them).
    public var annotations: [String: String] = [:]
    public var type: ServiceType = .clusterIP
    /// nil: no selector (endpoints are not managed; minik has no Endpoints objects to write).
    public var selector: [String: String]?
    /// The virtual IP; nil for a headless service (clusterIP: None) and for ExternalName.
    public var clusterIP: IPv4Address?
    public var headless: Bool = false
    public var ports: [ServicePort] = []
    public var clientIPAffinity: Bool = false
    public var affinityTimeoutSeconds: Int = ServiceSpec.defaultAffinityTimeout
    public var publishNotReadyAddresses: Bool = false
    public var externalIPs: [IPv4Address] = []
    public var externalName: String?
    /// Which endpoints traffic from outside (node ports, external IPs) goes to: nil or
    /// Cluster, every ready one (masqueraded); Local, only the receiving node's own, with
    /// the client's address kept.
    public var externalTrafficPolicy: TrafficPolicy?
    /// Which endpoints traffic to the cluster IP goes to: nil or Cluster, every ready one;
    /// Local, only those on the sender's node.
    public var internalTrafficPolicy: TrafficPolicy?
    public var source: SourceLocation
    /// The endpoints of a service without selector that minik sets itself (the API
    /// service's: the control-plane's address), each with every port's targetPort.
    public var fixedEndpoints: [IPv4Address] = []

    public init(namespace: String, name: String, source: SourceLocation) {
        self.namespace = namespace
        self.name = name
        self.source = source
    }

    public var key: String { "\(namespace)/\(name)" }
    public var hasNodePorts: Bool { type == .nodePort || type == .loadBalancer }
    /// Reached from outside the cluster: node ports or external IPs.
    public var isExternallyAccessible: Bool { hasNodePorts || !externalIPs.isEmpty }
    public var externalLocal: Bool { externalTrafficPolicy == .local }
    public var internalLocal: Bool { internalTrafficPolicy == .local }
    /// Whether the proxy programs anything for it.
    public var isProxied: Bool { clusterIP != nil && type != .externalName }

    /// Same service, ignoring where it was written.
    public func sameAs(_ other: ServiceSpec) -> Bool {
        var a = self
        a.source = other.source
        return a == other
    }
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
    /// Ephemeral containers (`kubectl debug`): added to a running pod through the
    /// pods/ephemeralcontainers subresource, started once, never restarted nor removed.
    public var ephemeralContainers: [ContainerSpec] = []
    /// "Deployment/web" for pods made from a Deployment's template.
    public var owner: String?
    public var source: SourceLocation
    /// How the pod's /etc/resolv.conf is made (ResolvConf.render).
    public var dnsPolicy: DNSPolicy = .clusterFirst
    /// spec.dnsConfig: merged on top of what the policy gives.
    public var dnsConfig: PodDNSConfig?
    /// spec.securityContext.sysctls: written into the pod's namespaces before it runs.
    public var sysctls: [Sysctl] = []
    /// spec.tolerations: the control-plane's taint is the only one there is.
    public var tolerations: [Toleration] = []
    /// How long a deleted pod's containers have between SIGTERM and SIGKILL.
    public var terminationGracePeriodSeconds = 30

    public var key: String { "\(namespace)/\(name)" }

    enum CodingKeys: String, CodingKey {
        case namespace, name, labels, annotations, nodeName, requestedNodeName, nodeSelector, containers
        case initContainers, restartPolicy, hostname, subdomain, shareProcessNamespace, owner, source
        case dnsPolicy, dnsConfig, sysctls, tolerations, terminationGracePeriodSeconds, ephemeralContainers
    }
}

/// spec.dnsPolicy.
public enum DNSPolicy: String, Codable, Sendable, CaseIterable {
    /// The cluster DNS, with the namespace's search path (the default).
    case clusterFirst = "ClusterFirst"
    /// ClusterFirst for pods on the host network; minik pods never are, so ClusterFirst.
    case clusterFirstWithHostNet = "ClusterFirstWithHostNet"
    /// The node's resolver: in minik, MinikConfig dns.upstream.
    case `default` = "Default"
    /// Only what dnsConfig gives.
    case none = "None"
}

/// spec.dnsConfig of a pod.
public struct PodDNSConfig: Codable, Sendable, Equatable {
    public var nameservers: [IPv4Address]
    public var searches: [String]
    public var options: [DNSOption]

    public init(nameservers: [IPv4Address] = [], searches: [String] = [], options: [DNSOption] = []) {
        self.nameservers = nameservers
        self.searches = searches
        self.options = options
    }
}

/// A resolv.conf option: "ndots:2" is name ndots, value 2; "edns0" has no value.
public struct DNSOption: Codable, Sendable, Equatable {
    public var name: String
    public var value: String?

    public init(name: String, value: String? = nil) {
        self.name = name
        self.value = value
    }

    /// As resolv.conf writes it: name, or name:value.
    public var text: String { value.map { $0.isEmpty ? name : "\(name):\($0)" } ?? name }
}

/// A Deployment: ReplicaSets of its template (Rollout.swift), whose pods are
/// <name>-<pod-template-hash>-<five random characters>.
public struct DeploymentSpec: Codable, Sendable, Equatable {
    public var namespace: String
    public var name: String
    public var replicas: Int
    public var selector: [String: String]
    /// The pod template (a pod named <name>-0 in errors), not yet placed.
    public var template: PodSpec
    /// The Deployment's own metadata (not its pods').
    public var labels: [String: String] = [:]
    public var annotations: [String: String] = [:]
    public var strategy = DeploymentStrategy()
    /// How many old ReplicaSets without pods a finished rollout keeps (for rollout undo).
    public var revisionHistoryLimit = 10
    /// Every template it has run that is still kept, oldest first; the deployment
    /// controller's record (ClusterSpec.rolledOut).
    public var replicaSets: [ReplicaSetRecord] = []
    /// When the controllers first saw it (its creationTimestamp).
    public var created: Date?

    public init(namespace: String, name: String, replicas: Int, selector: [String: String], template: PodSpec,
                labels: [String: String] = [:], annotations: [String: String] = [:]) {
        self.namespace = namespace
        self.name = name
        self.replicas = replicas
        self.selector = selector
        self.template = template
        self.labels = labels
        self.annotations = annotations
    }

    enum CodingKeys: String, CodingKey {
        case namespace, name, replicas, selector, template, labels, annotations, strategy, revisionHistoryLimit, replicaSets, created
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        namespace = try c.decode(String.self, forKey: .namespace)
        name = try c.decode(String.self, forKey: .name)
        replicas = try c.decode(Int.self, forKey: .replicas)
        selector = try c.decode([String: String].self, forKey: .selector)
        template = try c.decode(PodSpec.self, forKey: .template)
        labels = try c.decode(.labels, default: [:])
        annotations = try c.decode(.annotations, default: [:])
        strategy = try c.decode(.strategy, default: DeploymentStrategy())
        revisionHistoryLimit = try c.decode(.revisionHistoryLimit, default: 10)
        replicaSets = try c.decode(.replicaSets, default: [])
        created = try c.decodeIfPresent(Date.self, forKey: .created)
    }

    public var key: String { "\(namespace)/\(name)" }
    public var owner: String { "Deployment/\(name)" }

    /// The ReplicaSet whose template is the Deployment's, once a pass has made it.
    public var newReplicaSet: ReplicaSetRecord? {
        let t = Rollout.normalized(template)
        return replicaSets.first { $0.revision > 0 && $0.template == t }
    }
}

public struct NetworkSettings: Codable, Sendable, Equatable {
    public var backend: OverlayBackend
    public var underlaySubnet: IPv4CIDR
    /// MTU of the underlay (node eth0). Pods get mtu - 50 on vxlan (the VXLAN header).
    public var mtu: Int
    /// The underlay network's own MTU, when it is smaller than the nodes think (mtu): its
    /// bridge and ports get it, so larger frames vanish on the way (an MTU black hole).
    public var pathMTU: Int?
    /// The CNI bridge plugin's hairpinMode for pods' ports (nil: on).
    public var hairpinMode: Bool?
    /// net.bridge.bridge-nf-call-iptables in the nodes (nil: on, as kube-proxy needs).
    public var bridgeNetfilter: Bool?
    /// "stable" (nil): a pod's MAC comes from its IP and a re-created sandbox announces
    /// itself; "random": a new MAC each time, announced to nobody (peers' ARP goes stale).
    public var podMACs: String?

    public static let vxlanOverhead = 50

    public init(backend: OverlayBackend, underlaySubnet: IPv4CIDR, mtu: Int) {
        self.backend = backend
        self.underlaySubnet = underlaySubnet
        self.mtu = mtu
    }

    public var podMTU: Int { backend == .vxlan ? mtu - NetworkSettings.vxlanOverhead : mtu }
    public var underlayMTU: Int { pathMTU ?? mtu }
    public var hairpin: Bool { hairpinMode ?? true }
    public var callsIptablesOnBridges: Bool { bridgeNetfilter ?? true }
    public var randomPodMACs: Bool { podMACs == "random" }
}

/// An address cluster DNS forwards the names it does not own to.
public struct DNSUpstream: Codable, Sendable, Equatable, CustomStringConvertible {
    public var ip: IPv4Address
    public var port: Int

    public init(ip: IPv4Address, port: Int = 53) {
        self.ip = ip
        self.port = port
    }

    public var description: String { port == 53 ? ip.description : "\(ip):\(port)" }
}

/// MinikConfig dns: the cluster DNS service (kube-system/kube-dns) and its pods.
public struct DNSSettings: Codable, Sendable, Equatable {
    public static let defaultClusterDomain = "cluster.local"

    public var enabled: Bool
    /// The names' suffix: <service>.<namespace>.svc.<clusterDomain>.
    public var clusterDomain: String
    /// Where names outside the cluster domain are forwarded; each lies inside one of the
    /// cluster's subnets (minik sends no traffic outside its own namespaces).
    public var upstreams: [DNSUpstream]
    /// TTL of the answers, in seconds.
    public var ttl: Int
    /// Pods of the Deployment kube-system/minik-dns.
    public var replicas: Int

    public init(enabled: Bool = true, clusterDomain: String = DNSSettings.defaultClusterDomain,
                upstreams: [DNSUpstream] = [], ttl: Int = 5, replicas: Int = 2) {
        self.enabled = enabled
        self.clusterDomain = clusterDomain
        self.upstreams = upstreams
        self.ttl = ttl
        self.replicas = replicas
    }

    enum CodingKeys: String, CodingKey { case enabled, clusterDomain, upstreams, ttl, replicas }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DNSSettings()
        enabled = try c.decode(.enabled, default: d.enabled)
        clusterDomain = try c.decode(.clusterDomain, default: d.clusterDomain)
        upstreams = try c.decode(.upstreams, default: d.upstreams)
        ttl = try c.decode(.ttl, default: d.ttl)
        replicas = try c.decode(.replicas, default: d.replicas)
    }
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
    public var deployments: [DeploymentSpec] = []
    public var services: [ServiceSpec] = []
    public var networkPolicies: [NetworkPolicySpec] = []
    /// Labels of namespaces that have any (each namespace also has
    /// kubernetes.io/metadata.name: labels(ofNamespace:)).
    public var namespaceLabels: [String: [String: String]] = [:]
    /// First delay before a crashed container restarts; it doubles up to 30 s and resets
    /// after the container ran 60 s (kubelet's back-off, with a settable start).
    public var restartBackoffSeconds: Double = 1
    /// Cluster DNS (MinikConfig dns). A state file written before minik had it decodes
    /// with DNS disabled: that cluster was created without the DNS service and pods.
    public var dns: DNSSettings = .init()
    /// Accepted-but-ignored fields and similar notes, each naming its place.
    public var warnings: [String]
    /// kind's networking.apiServerAddress and apiServerPort: where the Kubernetes API
    /// listens (a loopback address; port 0 picks a free one).
    public var apiServerAddress = "127.0.0.1"
    public var apiServerPort = 0

    enum CodingKeys: String, CodingKey {
        case name, nodes, podSubnet, serviceSubnet, disableDefaultCNI, kubeProxyMode, network, namespaces
        case pods, deployments, services, restartBackoffSeconds, dns, warnings, apiServerAddress, apiServerPort
        case networkPolicies, namespaceLabels
    }

    /// The cluster DNS service's address (the serviceSubnet's tenth), nil when DNS is off.
    public var dnsServiceIP: IPv4Address? { dns.enabled ? SpecLoader.dnsServiceIP(serviceSubnet) : nil }

    public func node(named name: String) -> NodeSpec? { nodes.first { $0.name == name } }

    /// Places a pod as `up` does: its nodeName, or the eligible node (workers, else the
    /// control-plane; matching nodeSelector) with the fewest pods of its ReplicaSet
    /// (`spread`: the scheduler's default spreading), then the fewest pods. nil: no node fits.
    public func place(_ pod: PodSpec, load: [String: Int], spread: [String: Int] = [:]) -> String? {
        if let want = pod.requestedNodeName { return node(named: want)?.name }
        // The control-plane is tainted NoSchedule when there are workers (as kind does).
        let candidates = nodes.contains { $0.role == .worker } && !pod.toleratesControlPlane ? nodes.filter { $0.role == .worker } : nodes
        let eligible = candidates.filter { n in pod.nodeSelector.allSatisfy { n.labels[$0.key] == $0.value } }
        func rank(_ n: NodeSpec) -> (Int, Int, Int, Int) {
            let l = load[n.name] ?? 0
            return (l >= SpecLoader.podsPerNode ? 1 : 0, spread[n.name] ?? 0, l, n.index)
        }
        return eligible.min { rank($0) < rank($1) }?.name
    }

    public var load: [String: Int] { Dictionary(grouping: pods, by: \.nodeName).mapValues(\.count) }

    /// The spec with a Deployment's replicas set; its pods follow in the next pass of
    /// the controllers (rolledOut).
    public func scaled(deployment name: String, namespace: String, replicas: Int) throws(SpecError) -> ClusterSpec {
        guard replicas >= 0 else { throw SpecError([SpecProblem(nil, "replicas must be 0 or more")]) }
        guard let di = deployments.firstIndex(where: { $0.name == name && $0.namespace == namespace }) else {
            throw SpecError([SpecProblem(nil, "deployment \"\(name)\" not found in namespace \(namespace)")])
        }
        var out = self
        let d = deployments[di]
        let others = pods.count(where: { !($0.owner == d.owner && $0.namespace == namespace) })
        if let problem = SpecLoader.capacityProblem(replicas: replicas, others: others, nodes: nodes.count) {
            throw SpecError([SpecProblem(nil, problem)])
        }
        out.deployments[di].replicas = replicas
        return out
    }

    /// The spec without a pod (and, for a Deployment's pod, without that replica... a
    /// Deployment re-creates its pods: delete the Deployment or scale it instead).
    public func removing(pod name: String, namespace: String) throws(SpecError) -> ClusterSpec {
        guard let p = pods.first(where: { $0.name == name && $0.namespace == namespace }) else {
            throw SpecError([SpecProblem(nil, "pod \"\(name)\" not found in namespace \(namespace)")])
        }
        var out = self
        out.pods.removeAll { $0.key == p.key }
        return out
    }

    public func removing(deployment name: String, namespace: String) throws(SpecError) -> ClusterSpec {
        guard let d = deployments.first(where: { $0.name == name && $0.namespace == namespace }) else {
            throw SpecError([SpecProblem(nil, "deployment \"\(name)\" not found in namespace \(namespace)")])
        }
        var out = self
        out.deployments.removeAll { $0.key == d.key }
        out.pods.removeAll { $0.owner == d.owner && $0.namespace == namespace }
        return out
    }
    public func pods(on node: String) -> [PodSpec] { pods.filter { $0.nodeName == node } }

    public func removing(service name: String, namespace: String) throws(SpecError) -> ClusterSpec {
        guard services.contains(where: { $0.name == name && $0.namespace == namespace }) else {
            throw SpecError([SpecProblem(nil, "service \"\(name)\" not found in namespace \(namespace)")])
        }
        var out = self
        out.services.removeAll { $0.name == name && $0.namespace == namespace }
        return out
    }

    /// The pods a service's selector picks (same namespace, every selector label).
    public func pods(selectedBy s: ServiceSpec) -> [PodSpec] {
        guard let sel = s.selector, !sel.isEmpty else { return [] }
        return pods.filter { p in p.namespace == s.namespace && sel.allSatisfy { p.labels[$0.key] == $0.value } }
    }
}


// MARK: - decoding state written by older versions: fields added later take their defaults

extension KeyedDecodingContainer {
    func decode<T: Decodable>(_ key: Key, default value: @autoclosure () -> T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? value()
    }
}

extension ContainerSpec {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        image = try c.decode(String.self, forKey: .image)
        command = try c.decode(.command, default: [])
        args = try c.decode(.args, default: [])
        env = try c.decode(.env, default: [])
        ports = try c.decode(.ports, default: [])
        workingDir = try c.decodeIfPresent(String.self, forKey: .workingDir)
        privileged = try c.decode(.privileged, default: false)
        capabilitiesAdd = try c.decode(.capabilitiesAdd, default: [])
        capabilitiesDrop = try c.decode(.capabilitiesDrop, default: [])
        memoryLimit = try c.decodeIfPresent(Int64.self, forKey: .memoryLimit)
        ephemeralStorageLimit = try c.decodeIfPresent(Int64.self, forKey: .ephemeralStorageLimit)
        source = try c.decodeIfPresent(SourceLocation.self, forKey: .source)
        readinessProbe = try c.decodeIfPresent(Probe.self, forKey: .readinessProbe)
        livenessProbe = try c.decodeIfPresent(Probe.self, forKey: .livenessProbe)
        clusterDirMounts = try c.decode(.clusterDirMounts, default: [])
        stdin = try c.decode(.stdin, default: false)
        stdinOnce = try c.decode(.stdinOnce, default: false)
        tty = try c.decode(.tty, default: false)
        targetContainerName = try c.decodeIfPresent(String.self, forKey: .targetContainerName)
    }
}

extension PodSpec {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        namespace = try c.decode(String.self, forKey: .namespace)
        name = try c.decode(String.self, forKey: .name)
        labels = try c.decode(.labels, default: [:])
        annotations = try c.decode(.annotations, default: [:])
        nodeName = try c.decode(String.self, forKey: .nodeName)
        requestedNodeName = try c.decodeIfPresent(String.self, forKey: .requestedNodeName)
        nodeSelector = try c.decode(.nodeSelector, default: [:])
        containers = try c.decode([ContainerSpec].self, forKey: .containers)
        initContainers = try c.decode(.initContainers, default: [])
        restartPolicy = try c.decode(.restartPolicy, default: "Always")
        hostname = try c.decodeIfPresent(String.self, forKey: .hostname)
        subdomain = try c.decodeIfPresent(String.self, forKey: .subdomain)
        shareProcessNamespace = try c.decode(.shareProcessNamespace, default: false)
        ephemeralContainers = try c.decode(.ephemeralContainers, default: [])
        owner = try c.decodeIfPresent(String.self, forKey: .owner)
        source = try c.decode(SourceLocation.self, forKey: .source)
        dnsPolicy = try c.decode(.dnsPolicy, default: .clusterFirst)
        dnsConfig = try c.decodeIfPresent(PodDNSConfig.self, forKey: .dnsConfig)
        sysctls = try c.decode(.sysctls, default: [])
        tolerations = try c.decode(.tolerations, default: [])
        terminationGracePeriodSeconds = try c.decode(.terminationGracePeriodSeconds, default: 30)
    }
}

extension ClusterSpec {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        nodes = try c.decode([NodeSpec].self, forKey: .nodes)
        podSubnet = try c.decode(IPv4CIDR.self, forKey: .podSubnet)
        serviceSubnet = try c.decode(IPv4CIDR.self, forKey: .serviceSubnet)
        disableDefaultCNI = try c.decode(.disableDefaultCNI, default: false)
        kubeProxyMode = try c.decode(.kubeProxyMode, default: "iptables")
        network = try c.decode(NetworkSettings.self, forKey: .network)
        namespaces = try c.decode(.namespaces, default: ["default", "kube-system"])
        pods = try c.decode(.pods, default: [])
        deployments = try c.decode(.deployments, default: [])
        services = try c.decode(.services, default: [])
        networkPolicies = try c.decode(.networkPolicies, default: [])
        namespaceLabels = try c.decode(.namespaceLabels, default: [:])
        restartBackoffSeconds = try c.decode(.restartBackoffSeconds, default: 1)
        dns = try c.decode(.dns, default: DNSSettings(enabled: false))
        warnings = try c.decode(.warnings, default: [])
        apiServerAddress = try c.decode(.apiServerAddress, default: "127.0.0.1")
        apiServerPort = try c.decode(.apiServerPort, default: 0)
    }
}

extension ServiceSpec {
    enum CodingKeys: String, CodingKey {
        case namespace, name, labels, annotations, type, selector, clusterIP, headless, ports, clientIPAffinity
        case affinityTimeoutSeconds, publishNotReadyAddresses, externalIPs, externalName, source, fixedEndpoints
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        namespace = try c.decode(String.self, forKey: .namespace)
        name = try c.decode(String.self, forKey: .name)
        labels = try c.decode(.labels, default: [:])
        annotations = try c.decode(.annotations, default: [:])
        type = try c.decode(.type, default: .clusterIP)
        selector = try c.decodeIfPresent([String: String].self, forKey: .selector)
        clusterIP = try c.decodeIfPresent(IPv4Address.self, forKey: .clusterIP)
        headless = try c.decode(.headless, default: false)
        ports = try c.decode(.ports, default: [])
        clientIPAffinity = try c.decode(.clientIPAffinity, default: false)
        affinityTimeoutSeconds = try c.decode(.affinityTimeoutSeconds, default: ServiceSpec.defaultAffinityTimeout)
        publishNotReadyAddresses = try c.decode(.publishNotReadyAddresses, default: false)
        externalIPs = try c.decode(.externalIPs, default: [])
        externalName = try c.decodeIfPresent(String.self, forKey: .externalName)
        source = try c.decode(SourceLocation.self, forKey: .source)
        fixedEndpoints = try c.decode(.fixedEndpoints, default: [])
    }
}
