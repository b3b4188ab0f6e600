// Decoding the spec file: a kind Cluster config, minik's own MinikConfig, and Kubernetes
// Namespaces, Pods and Deployments, in any order, as documents of one YAML file.
// Decode, default, validate, place; every problem is collected and reported together,
// each with file:line:column and field path. Nothing here touches the system.
import Foundation

public enum SpecLoader {
    public static let kindAPIVersion = "kind.x-k8s.io/v1alpha4"
    public static let minikAPIVersion = "minik.dev/v1alpha1"
    public static let defaultClusterName = "kind"
    /// Interface names are at most 15 bytes (IFNAMSIZ - 1). minik names the underlay's
    /// bridge "br-<cluster>" and each node's port on it "<cluster>-<node index>" (index up
    /// to 255), so a cluster name may have at most 11 bytes.
    public static let maxClusterNameLength = 11
    /// Addresses a node's /24 podCIDR gives to pods: not the network, gateway (cni0) or
    /// broadcast address.
    public static let podsPerNode = 253

    static let supportedKinds = [
        ("Cluster", kindAPIVersion), ("MinikConfig", minikAPIVersion), ("Namespace", "v1"),
        ("Pod", "v1"), ("Deployment", "apps/v1"), ("Service", "v1"), ("NetworkPolicy", "networking.k8s.io/v1"),
    ]

    /// The service subnet's addresses that are never allocated: the network address, the
    /// first address (the kubernetes API service in a real cluster), the tenth (the
    /// cluster DNS service, as kubeadm and kind place it) and the broadcast address.
    public static func reservedServiceIP(_ ip: IPv4Address, in subnet: IPv4CIDR) -> String? {
        if ip == subnet.network || ip == subnet.broadcast { return "the subnet's network or broadcast address" }
        if ip == subnet.address(1) { return "reserved for the kubernetes API service" }
        if ip == dnsServiceIP(subnet) { return "reserved for the cluster DNS service (kube-system/kube-dns)" }
        return nil
    }

    /// Where cluster DNS listens: the tenth address of the service subnet (10.96.0.10).
    public static func dnsServiceIP(_ subnet: IPv4CIDR) -> IPv4Address { subnet.address(10) }

    /// FNV-1a: allocations start from a hash of the name, so a service gets the same
    /// ClusterIP and node ports every time the file is brought up, whatever else is in it.
    static func hash(_ s: String) -> UInt32 {
        var h: UInt32 = 2_166_136_261
        for b in s.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return h
    }

    /// Reads and decodes a spec file.
    public static func load(path: String) throws(SpecError) -> ClusterSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SpecError([SpecProblem(nil, "\(path): cannot read the file")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SpecError([SpecProblem(SourceLocation(file: path, line: 0, column: 0, field: ""), "the file is not UTF-8 text")])
        }
        return try parse(text, file: path)
    }

    /// `minik apply`: the running cluster's spec with the documents of `text` (Pods,
    /// Deployments, Namespaces) added or replacing those of the same name.
    /// `strict` false: unknown fields are dropped with a warning instead of refused (the
    /// API's fieldValidation Warn and Ignore).
    public static func apply(_ text: String, file: String, to base: ClusterSpec, strict: Bool = true) throws(SpecError) -> ClusterSpec {
        try parse(text, file: file, base: base, strict: strict)
    }

    /// Decodes, validates and places a spec given as text. `file` is used in messages.
    public static func parse(_ text: String, file: String, base: ClusterSpec? = nil, strict: Bool = true) throws(SpecError) -> ClusterSpec {
        let r = YAMLReader(file: file)
        r.strict = strict
        var builder = Builder(r: r, base: base)
        let docs = r.documents(text).filter { !$0.isNull }
        if docs.isEmpty {
            if r.problems.isEmpty {
                r.failFile(base == nil
                    ? "there is nothing in the file (no YAML document, only comments or '---'): describe the cluster with a kind Cluster document, or Pods, Deployments and Services"
                    : "there is nothing in the file to apply (no YAML document, only comments or '---')")
            }
            throw SpecError(r.problems)
        }
        for doc in docs {
            builder.document(doc)
        }
        let spec = builder.finish()
        if !r.problems.isEmpty { throw SpecError(r.problems) }
        return spec!
    }
}

// MARK: - per-document decoding

struct RawNode {
    var role: NodeRole
    var labels: [String: String]
    var portMappings: [PortMapping]
    var at: YNode
}

struct RawPod {
    var spec: PodSpec
    var at: YNode
    var nodeNameAt: YNode?
}

/// A Deployment whose pods are not made yet: they go after the first `position` pods of
/// the documents.
struct UnexpandedDeployment {
    var position: Int
    var deployment: DeploymentSpec
    var at: YNode
    var replicasAt: YNode?
    var nodeNameAt: YNode?
}

struct RawService {
    var spec: ServiceSpec
    var at: YNode
    var clusterIPAt: YNode?
    /// Where each port's nodePort was written (by port index).
    var nodePortAt: [Int: YNode]
    var externalIPsAt: [YNode]
}

struct Builder {
    let r: YAMLReader
    var clusterDoc: YNode?
    var configDoc: YNode?
    var name = SpecLoader.defaultClusterName
    var nameAt: YNode?
    var nodes: [RawNode]?
    var nodesAt: YNode?
    var podSubnet = try! IPv4CIDR.parse("10.244.0.0/16")
    var podSubnetAt: YNode?
    var serviceSubnet = try! IPv4CIDR.parse("10.96.0.0/12")
    var serviceSubnetAt: YNode?
    var disableDefaultCNI = false
    var kubeProxyMode = "iptables"
    var apiServerAddress = "127.0.0.1"
    var apiServerPort = 0
    var network = NetworkSettings(backend: .vxlan, underlaySubnet: try! IPv4CIDR.parse("172.18.0.0/16"), mtu: 1500)
    var underlayAt: YNode?
    var namespaces: [String] = ["default", "kube-system"]
    var restartBackoff: Double = 1
    var pods: [RawPod] = []
    var deployments: [DeploymentSpec] = []
    var unexpanded: [UnexpandedDeployment] = []
    var services: [RawService] = []
    var networkPolicies: [NetworkPolicySpec] = []
    var networkPolicyKeys: Set<String> = []
    var namespaceLabels: [String: [String: String]] = [:]
    var serviceKeys = Set<String>()
    /// MinikConfig dns, and where each upstream was written.
    var dns = DNSSettings()
    var upstreamsAt: [YNode] = []
    /// Every dnsConfig nameserver of the documents' pods and templates, with its place
    /// (checked against the subnets once they are known).
    var nameserversAt: [(IPv4Address, YNode)] = []
    /// Where each Deployment was written (its metadata).
    var deploymentAt: [String: YNode] = [:]
    /// For `minik apply`: the running cluster the documents are applied to.
    var base: ClusterSpec?

    init(r: YAMLReader, base: ClusterSpec? = nil) {
        self.r = r
        self.base = base
    }

    mutating func document(_ doc: YNode) {
        guard case .mapping(let m) = doc.node else {
            r.fail(doc, "a document must be a mapping with apiVersion and kind")
            return
        }
        let kind = m["kind"]?.string
        let api = m["apiVersion"]?.string
        guard let kind else {
            r.fail(doc, "document has no \"kind\" (supported: \(supportedList))")
            return
        }
        guard let expected = SpecLoader.supportedKinds.first(where: { $0.0 == kind }) else {
            r.fail(doc.child("kind", m["kind"]!, keyMark: nil), "unknown kind \"\(kind)\" (supported: \(supportedList))")
            return
        }
        guard api == expected.1 else {
            let at = m["apiVersion"].map { doc.child("apiVersion", $0, keyMark: nil) } ?? doc
            r.fail(at, "apiVersion \(api.map { "\"\($0)\"" } ?? "missing") is not valid for kind \(kind) (use \(expected.1))")
            return
        }
        if base != nil && (kind == "Cluster" || kind == "MinikConfig") {
            r.fail(doc, "apply changes pods, deployments, services, network policies and namespaces; a \(kind) is set when the cluster is created (minik down, then up)")
            return
        }
        switch kind {
        case "Cluster": cluster(doc)
        case "MinikConfig": config(doc)
        case "Namespace": namespace(doc)
        case "Pod": pod(doc)
        case "Deployment": deployment(doc)
        case "Service": service(doc)
        case "NetworkPolicy": networkPolicy(doc)
        default: preconditionFailure("kind listed as supported but not decoded")
        }
    }

    var supportedList: String {
        SpecLoader.supportedKinds.map { "\($0.0) (\($0.1))" }.joined(separator: ", ")
    }

    // MARK: kind's Cluster

    mutating func cluster(_ doc: YNode) {
        if let first = clusterDoc {
            r.fail(doc, "a second Cluster document (the first is at line \(first.node.mark?.line ?? 0)); one file describes one cluster")
            return
        }
        clusterDoc = doc
        let kubeadm = "kubeadm and containerd settings have no meaning in minik"
        guard let f = r.mapping(doc, "Cluster", known: ["kind", "apiVersion", "name", "networking", "nodes"], ignored: [
            "featureGates": "minik runs no Kubernetes control plane", "runtimeConfig": "minik runs no API server",
            "kubeadmConfigPatches": kubeadm, "kubeadmConfigPatchesJSON6902": kubeadm,
            "containerdConfigPatches": kubeadm, "containerdConfigPatchesJSON6902": kubeadm,
        ]) else { return }
        if let n = f["name"] {
            nameAt = n
            if let s = r.string(n) { name = s }
        }
        if let net = f["networking"], let nf = r.mapping(net, "Cluster networking", known: [
            "podSubnet", "serviceSubnet", "disableDefaultCNI", "kubeProxyMode", "ipFamily", "apiServerAddress", "apiServerPort",
        ], ignored: [
            "dnsSearch": "node DNS search domains are not used",
        ]) {
            if let y = nf["apiServerAddress"], let a = r.string(y) {
                // The network safety rule: the API is for this machine only.
                if let ip = IPv4Address(a), ip.description.hasPrefix("127.") { apiServerAddress = ip.description } else {
                    r.fail(y, "apiServerAddress \"\(a)\" is not a loopback address: minik's API listens on 127.0.0.1 (or another 127.x address) only")
                }
            }
            if let y = nf["apiServerPort"], let p = r.int(y) {
                if (0...65535).contains(p) { apiServerPort = p } else { r.fail(y, "apiServerPort \(p) is not a port (0 picks a free one, else 1-65535)") }
            }
            if let y = nf["podSubnet"], let c = cidr(y) { podSubnet = c; podSubnetAt = y }
            if let y = nf["serviceSubnet"], let c = cidr(y) { serviceSubnet = c; serviceSubnetAt = y }
            if let b = r.bool(nf["disableDefaultCNI"]) { disableDefaultCNI = b }
            if let y = nf["kubeProxyMode"], let mode = r.string(y) {
                switch mode {
                case "iptables", "none": kubeProxyMode = mode
                case "ipvs": r.fail(y, "kubeProxyMode ipvs needs IPVS, which this kernel does not have (use iptables or none)")
                default: r.fail(y, "kubeProxyMode \"\(mode)\" is not supported (use iptables or none)")
                }
            }
            if let y = nf["ipFamily"], let fam = r.string(y), fam != "ipv4" {
                r.fail(y, "ipFamily \"\(fam)\" is not supported (minik is IPv4 only: use ipv4)")
            }
        }
        if let ny = f["nodes"], let items = r.sequence(ny) {
            nodesAt = ny
            nodes = items.compactMap { node($0) }
        }
    }

    func node(_ y: YNode) -> RawNode? {
        let ignoredNode = "minik nodes are network namespaces, not node containers"
        guard let f = r.mapping(y, "a Cluster node", known: ["role", "labels", "extraPortMappings"], ignored: [
            "image": ignoredNode, "extraMounts": ignoredNode,
            "kubeadmConfigPatches": "kubeadm settings have no meaning in minik",
            "kubeadmConfigPatchesJSON6902": "kubeadm settings have no meaning in minik",
        ]) else { return nil }
        var role = NodeRole.controlPlane
        if let ry = f["role"], let s = r.string(ry) {
            guard let rr = NodeRole(rawValue: s) else {
                r.fail(ry, "role \"\(s)\" is not valid (use control-plane or worker)")
                return nil
            }
            role = rr
        }
        let labels = self.labels(f["labels"]) ?? [:]
        var mappings: [PortMapping] = []
        for m in r.sequence(f["extraPortMappings"]) ?? [] {
            guard let mf = r.mapping(m, "an extraPortMapping", known: ["containerPort", "hostPort", "listenAddress", "protocol"]) else { continue }
            guard let cp = r.int(mf["containerPort"]) else {
                if mf["containerPort"] == nil { r.fail(m, "containerPort is required") }
                continue
            }
            if !(1...65535).contains(cp) { r.fail(mf["containerPort"], "containerPort \(cp) is out of range (1-65535)") }
            let hp = r.int(mf["hostPort"]) ?? cp
            if !(1...65535).contains(hp) { r.fail(mf["hostPort"], "hostPort \(hp) is out of range (1-65535)") }
            var listen = "127.0.0.1"
            if let ly = mf["listenAddress"], let la = r.string(ly), la != "127.0.0.1" {
                r.warn(ly, "minik publishes ports on 127.0.0.1 only; listenAddress \(la) becomes 127.0.0.1")
                listen = "127.0.0.1"
            }
            let proto = protocolName(mf["protocol"]) ?? "TCP"
            mappings.append(PortMapping(containerPort: cp, hostPort: hp, listenAddress: listen, proto: proto))
        }
        return RawNode(role: role, labels: labels, portMappings: mappings, at: y)
    }

    func protocolName(_ y: YNode?) -> String? {
        guard let y, let p = r.string(y) else { return nil }
        guard ["TCP", "UDP"].contains(p) else {
            r.fail(y, "protocol \"\(p)\" is not supported (use TCP or UDP)")
            return nil
        }
        return p
    }

    func cidr(_ y: YNode) -> IPv4CIDR? {
        guard let s = r.string(y) else { return nil }
        do { return try IPv4CIDR.parse(s) } catch {
            r.fail(y, "invalid CIDR: \(error.description)")
            return nil
        }
    }

    // MARK: minik's own settings

    mutating func config(_ doc: YNode) {
        if let first = configDoc {
            r.fail(doc, "a second MinikConfig document (the first is at line \(first.node.mark?.line ?? 0))")
            return
        }
        configDoc = doc
        guard let f = r.mapping(doc, "MinikConfig", known: ["kind", "apiVersion", "network", "restartBackoffSeconds", "dns"]) else { return }
        if let dy = f["dns"] { dnsSettings(dy) }
        if let by = f["restartBackoffSeconds"] {
            if case .scalar(let sc) = by.node, let v = Double(sc.string), v >= 0, v <= 300 { restartBackoff = v } else {
                r.fail(by, "restartBackoffSeconds must be a number of seconds from 0 to 300")
            }
        }
        guard let ny = f["network"], let nf = r.mapping(ny, "MinikConfig network", known: ["backend", "underlaySubnet", "mtu", "pathMTU", "hairpinMode", "bridgeNetfilter", "podMACs"]) else { return }
        if let y = nf["backend"], let s = r.string(y) {
            if let b = OverlayBackend(rawValue: s) { network.backend = b } else {
                r.fail(y, "backend \"\(s)\" is not valid (use vxlan or host-gw)")
            }
        }
        if let y = nf["underlaySubnet"], let c = cidr(y) { network.underlaySubnet = c; underlayAt = y }
        if let y = nf["mtu"], let m = r.int(y) {
            if (1280...9000).contains(m) { network.mtu = m } else {
                r.fail(y, "mtu \(m) is out of range (1280-9000)")
            }
        }
        if let y = nf["pathMTU"], let m = r.int(y) {
            if !(576...9000).contains(m) {
                r.fail(y, "pathMTU \(m) is out of range (576-9000)")
            } else if m > network.mtu {
                r.fail(y, "pathMTU \(m) is larger than mtu \(network.mtu): the underlay's path can only be narrower than the nodes' links")
            } else {
                network.pathMTU = m
            }
        }
        if let y = nf["hairpinMode"], let b = r.bool(y) { network.hairpinMode = b }
        if let y = nf["bridgeNetfilter"], let b = r.bool(y) { network.bridgeNetfilter = b }
        if let y = nf["podMACs"], let m = r.string(y) {
            if m == "stable" || m == "random" { network.podMACs = m } else {
                r.fail(y, "podMACs \"\(m)\" is not valid (use stable or random)")
            }
        }
    }

    // MARK: Kubernetes objects

    mutating func namespace(_ doc: YNode) {
        guard let f = r.mapping(doc, "Namespace", known: ["kind", "apiVersion", "metadata"], ignored: ["spec": "namespaces have no spec in minik", "status": "status is not input"]) else { return }
        guard let md = f["metadata"], let meta = metadata(md, namespaced: false) else {
            if f["metadata"] == nil { r.fail(doc, "metadata.name is required") }
            return
        }
        var labels = meta.labels
        labels["kubernetes.io/metadata.name"] = nil
        namespaceLabels[meta.name] = labels
        if namespaces.contains(meta.name) {
            if meta.name != "default" && meta.name != "kube-system" {
                r.fail(md, "namespace \"\(meta.name)\" is defined twice")
            }
        } else {
            namespaces.append(meta.name)
        }
    }

    struct Meta {
        var name: String
        var namespace: String
        var namespaceAt: YNode?
        var labels: [String: String]
        var annotations: [String: String]
    }

    func metadata(_ y: YNode, namespaced: Bool, nameRequired: Bool = true) -> Meta? {
        let serverSide = "set by the API server, not input"
        guard let f = r.mapping(y, "metadata", known: ["name", "namespace", "labels", "annotations"], ignored: [
            "uid": serverSide, "resourceVersion": serverSide, "creationTimestamp": serverSide,
            "generation": serverSide, "managedFields": serverSide, "ownerReferences": serverSide,
            "finalizers": "minik has no controllers that use finalizers",
        ]) else { return nil }
        var name = ""
        if let ny = f["name"], let s = r.string(ny) {
            name = s
            if !DNS.isLabel(s) { r.fail(ny, DNS.labelProblem(s, what: "name")) }
        } else if nameRequired {
            r.fail(y, "metadata.name is required")
        }
        var ns = "default"
        if let nsy = f["namespace"], let s = r.string(nsy) {
            if !namespaced { r.fail(nsy, "a Namespace has no namespace") }
            ns = s
            if !DNS.isLabel(s) { r.fail(nsy, DNS.labelProblem(s, what: "namespace")) }
        }
        return Meta(name: name, namespace: ns, namespaceAt: f["namespace"],
                    labels: labels(f["labels"]) ?? [:], annotations: annotations(f["annotations"]) ?? [:])
    }

    mutating func pod(_ doc: YNode) {
        guard let f = r.mapping(doc, "Pod", known: ["kind", "apiVersion", "metadata", "spec"], ignored: ["status": "status is not input"]) else { return }
        guard let md = f["metadata"], let meta = metadata(md, namespaced: true), !meta.name.isEmpty else {
            if f["metadata"] == nil { r.fail(doc, "metadata.name is required") }
            return
        }
        guard let sy = f["spec"] else {
            r.fail(doc, "spec is required (a Pod needs spec.containers)")
            return
        }
        guard let (spec, nodeAt, nameservers) = podSpec(sy, meta: meta, at: doc, owner: nil) else { return }
        nameserversAt += nameservers
        pods.append(RawPod(spec: spec, at: md, nodeNameAt: nodeAt))
    }

    mutating func deployment(_ doc: YNode) {
        guard let f = r.mapping(doc, "Deployment", known: ["kind", "apiVersion", "metadata", "spec"], ignored: ["status": "status is not input"]) else { return }
        guard let md = f["metadata"], let meta = metadata(md, namespaced: true), !meta.name.isEmpty else {
            if f["metadata"] == nil { r.fail(doc, "metadata.name is required") }
            return
        }
        guard let sy = f["spec"], let sf = r.mapping(sy, "Deployment spec", known: ["replicas", "selector", "template", "strategy", "revisionHistoryLimit"], ignored: [
            "minReadySeconds": "not used by minik (a pod is available once ready)", "progressDeadlineSeconds": "not used by minik",
            "paused": "not used by minik",
        ]) else {
            if f["spec"] == nil { r.fail(doc, "spec is required (a Deployment needs spec.selector and spec.template)") }
            return
        }
        var replicas = 1
        let replicasAt = sf["replicas"]
        if let ry = replicasAt, let n = r.int(ry) {
            if n < 0 { r.fail(ry, "replicas must be 0 or more") } else { replicas = n }
        }
        var selector: [String: String] = [:]
        if let sel = sf["selector"], let self_ = r.mapping(sel, "selector", known: ["matchLabels"]) {
            selector = labels(self_["matchLabels"]) ?? [:]
            if selector.isEmpty { r.fail(sel, "selector.matchLabels must not be empty") }
        } else if sf["selector"] == nil {
            r.fail(sy, "spec.selector is required")
        }
        guard let ty = sf["template"], let tf = r.mapping(ty, "pod template", known: ["metadata", "spec"]) else {
            if sf["template"] == nil { r.fail(sy, "spec.template is required") }
            return
        }
        var tmeta = Meta(name: meta.name, namespace: meta.namespace, labels: [:], annotations: [:])
        if let tmy = tf["metadata"], let tm = metadata(tmy, namespaced: true, nameRequired: false) {
            tmeta.labels = tm.labels
            tmeta.annotations = tm.annotations
        }
        for (k, v) in selector where tmeta.labels[k] != v {
            r.fail(tf["metadata"] ?? ty, "selector does not match template labels: template has no label \(k)=\(v)")
            break
        }
        guard let tsy = tf["spec"] else {
            r.fail(ty, "template.spec is required")
            return
        }
        var m = tmeta
        m.name = "\(meta.name)-0"
        if !DNS.isLabel(meta.name) {
            r.fail(md, DNS.labelProblem(meta.name, what: "Deployment name (its pods' names start with it)"))
            return
        }
        if tmeta.labels["pod-template-hash"] != nil {
            r.fail(tf["metadata"] ?? ty, "template label pod-template-hash is set by the deployment controller, not in the template")
        }
        let strategy = deploymentStrategy(sf["strategy"], replicas: replicas)
        var history = 10
        if let hy = sf["revisionHistoryLimit"], let n = r.int(hy) {
            if n < 0 { r.fail(hy, "revisionHistoryLimit must be 0 or more") } else { history = n }
        }
        guard let (template, nodeAt, nameservers) = podSpec(tsy, meta: m, at: doc, owner: "Deployment/\(meta.name)") else { return }
        var d = DeploymentSpec(namespace: meta.namespace, name: meta.name, replicas: replicas, selector: selector, template: template,
                               labels: meta.labels, annotations: meta.annotations)
        d.strategy = strategy
        d.revisionHistoryLimit = history
        if deployments.contains(where: { $0.key == d.key }) {
            r.fail(md, "deployment \(d.key) is defined twice")
            return
        }
        nameserversAt += nameservers
        deploymentAt[d.key] = md
        deployments.append(d)
        unexpanded.append(UnexpandedDeployment(position: pods.count, deployment: d, at: md, replicasAt: replicasAt, nodeNameAt: nodeAt))
    }

    /// spec.strategy: RollingUpdate (maxSurge, maxUnavailable: a count or a percent) or
    /// Recreate, validated as the apiserver validates it.
    func deploymentStrategy(_ y: YNode?, replicas: Int) -> DeploymentStrategy {
        var s = DeploymentStrategy()
        guard let y, let f = r.mapping(y, "strategy", known: ["type", "rollingUpdate"]) else { return s }
        let type = r.string(f["type"]) ?? "RollingUpdate"
        switch type {
        case "Recreate":
            s.recreate = true
            if let ru = f["rollingUpdate"] { r.fail(ru, "rollingUpdate may not be specified when strategy type is 'Recreate'") }
            return s
        case "RollingUpdate": break
        default:
            r.fail(f["type"] ?? y, "strategy type \"\(type)\" is not supported (supported values: \"Recreate\", \"RollingUpdate\")")
            return s
        }
        guard let ru = f["rollingUpdate"], let rf = r.mapping(ru, "rollingUpdate", known: ["maxSurge", "maxUnavailable"]) else { return s }
        func value(_ key: String) -> IntOrPercent? {
            guard let v = rf[key], case .scalar(let sc) = v.node else {
                if let v = rf[key] { r.fail(v, "\(key) must be an integer or a percentage (\"25%\")") }
                return nil
            }
            if sc.style == .plain, let n = Int(sc.string) {
                if n < 0 { r.fail(v, "\(key) must be greater than or equal to 0") ; return nil }
                if n > Int(Int32.max) { r.fail(v, "\(key) \(n) is more than \(Int32.max)"); return nil }
                return .count(n)
            }
            if let p = IntOrPercent.percent(sc.string), case .percent(let n) = p, n > 1_000_000 {
                r.fail(v, "\(key) \(sc.string) is more than 1000000%")
                return nil
            }
            guard let p = IntOrPercent.percent(sc.string) else {
                r.fail(v, "\(key) \"\(sc.string)\" must be an integer or a percentage (\"25%\")")
                return nil
            }
            return p
        }
        if let v = value("maxSurge") { s.maxSurge = v }
        if let v = value("maxUnavailable") {
            if case .percent(let p) = v, p > 100, let at = rf["maxUnavailable"] { r.fail(at, "maxUnavailable must not be greater than 100%") }
            s.maxUnavailable = v
        }
        if s.maxSurge.scaled(100, roundUp: true) == 0 && s.maxUnavailable.scaled(100, roundUp: false) == 0 {
            r.fail(rf["maxUnavailable"] ?? ru, "maxUnavailable may not be 0 when maxSurge is 0")
        }
        return s
    }

    /// Checks each Deployment's replicas once the cluster's size is known: a Deployment
    /// whose replicas would take the cluster past the addresses of its nodes' podCIDRs
    /// is refused at spec.replicas and dropped (replicas is counted, never allocated,
    /// before this check, so "replicas: 1000000000" costs nothing). `others`: the pods
    /// the cluster has besides the documents' (the cluster DNS pods, or on apply the
    /// running ones that stay). The pods themselves are made by the controllers' pass.
    mutating func checkDeploymentCapacity(nodes: Int, others: Int) {
        var total = others + pods.count
        for u in unexpanded {
            let n = u.deployment.replicas
            if let problem = SpecLoader.capacityProblem(replicas: n, others: total, nodes: nodes) {
                r.fail(u.replicasAt ?? u.at, problem)
                deployments.removeAll { $0.key == u.deployment.key }
                continue
            }
            total += n
        }
    }

    /// The controllers' pass (ClusterSpec.rolledOut) over the Deployments `keys` of
    /// `out`: their ReplicaSets and pods. A pod that fits no node is an error at its
    /// Deployment. `ready`: every running pod counts as ready (apply checks a rollout's
    /// first step this way; the supervisor's pass then decides with what it observes).
    func rollOut(_ out: ClusterSpec, keys: Set<String>, ready: Bool = false) -> ClusterSpec {
        var rng = SystemRandomNumberGenerator()
        let seen = RolloutObservation(ready: ready ? Set(out.pods.map(\.key)) : [])
        let pass = out.rolledOut(seen, only: keys, random: &rng)
        for e in pass.events where e.reason == "FailedCreate" {
            let d = pass.spec.deployments.first { d in d.namespace == e.namespace && d.replicaSets.contains { $0.name(of: d.name) == e.name } }
            r.fail(d.flatMap { deploymentAt[$0.key] }, "\(d.map { "deployment \($0.key)" } ?? e.name): \(e.message.replacingOccurrences(of: "Error creating: ", with: "cannot place its pods: "))")
        }
        return pass.spec
    }

    /// A pod's spec (or a template's), where its nodeName was written, and its dnsConfig
    /// nameservers with their places.
    func podSpec(_ y: YNode, meta: Meta, at doc: YNode, owner: String?) -> (PodSpec, YNode?, [(IPv4Address, YNode)])? {
        let later = "not implemented by minik yet"
        guard let f = r.mapping(y, "Pod spec", known: [
            "containers", "initContainers", "nodeName", "nodeSelector", "restartPolicy", "hostname", "subdomain",
            "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "dnsPolicy", "dnsConfig", "securityContext",
            "tolerations", "terminationGracePeriodSeconds",
        ], ignored: [
            "volumes": later, "serviceAccountName": later,
            "serviceAccount": later, "automountServiceAccountToken": later, "affinity": later,
"priorityClassName": later, "priority": later, "schedulerName": later,
            "imagePullSecrets": later, "enableServiceLinks": later, "readinessGates": later,
            "topologySpreadConstraints": later, "runtimeClassName": later, "activeDeadlineSeconds": later,
            "hostAliases": later, "preemptionPolicy": later, "overhead": later, "setHostnameAsFQDN": later,
            "os": later, "hostUsers": later, "schedulingGates": later, "resourceClaims": later,
            "ephemeralContainers": later,
        ]) else { return nil }
        for field in ["hostNetwork", "hostPID", "hostIPC"] where r.bool(f[field]) == true {
            r.fail(f[field], "\(field): true is not supported (a minik pod always has its own namespaces)")
        }
        var restart = "Always"
        if let ry = f["restartPolicy"], let s = r.string(ry) {
            if ["Always", "OnFailure", "Never"].contains(s) { restart = s } else {
                r.fail(ry, "restartPolicy \"\(s)\" is not valid (use Always, OnFailure or Never)")
            }
        }
        var names: [String: YNode] = [:]
        var containers: [ContainerSpec] = [], inits: [ContainerSpec] = []
        let (count, initCount) = (f["containers"]?.node.sequence?.count ?? 0, f["initContainers"]?.node.sequence?.count ?? 0)
        if count + initCount > SpecLoader.maxContainersPerPod {
            // Counted before any is decoded: a problem for the pod, not one per container.
            r.fail(count > SpecLoader.maxContainersPerPod ? f["containers"] : f["initContainers"],
                   "the pod has \(count) containers and \(initCount) init containers; minik runs at most \(SpecLoader.maxContainersPerPod) in one pod, both kinds together")
        } else {
            containers = containerList(f["containers"], names: &names)
            if f["containers"] == nil { r.fail(y, "spec.containers is required (at least one container)") }
            else if containers.isEmpty, (r.sequence(f["containers"]) ?? []).isEmpty { r.fail(f["containers"], "a pod needs at least one container") }
            inits = containerList(f["initContainers"], names: &names)
        }
        var hostname: String?
        if let hy = f["hostname"], let h = r.string(hy) {
            if DNS.isLabel(h) { hostname = h } else { r.fail(hy, DNS.labelProblem(h, what: "hostname")) }
        }
        var subdomain: String?
        if let sy = f["subdomain"], let s = r.string(sy) {
            if DNS.isLabel(s) { subdomain = s } else { r.fail(sy, DNS.labelProblem(s, what: "subdomain")) }
        }
        let shareProcessNamespace = r.bool(f["shareProcessNamespace"]) ?? false
        let nodeNameY = f["nodeName"]
        let requested = r.string(nodeNameY)
        let (dnsPolicy, dnsConfig, nameservers) = podDNS(f)
        var spec = PodSpec(
            namespace: meta.namespace, name: meta.name, labels: meta.labels, annotations: meta.annotations,
            nodeName: requested ?? "", requestedNodeName: requested, nodeSelector: labels(f["nodeSelector"]) ?? [:],
            containers: containers, initContainers: inits, restartPolicy: restart, hostname: hostname,
            subdomain: subdomain, shareProcessNamespace: shareProcessNamespace, owner: owner, source: r.location(doc))
        spec.dnsPolicy = dnsPolicy
        spec.dnsConfig = dnsConfig
        spec.sysctls = podSecurityContext(f["securityContext"])
        spec.tolerations = tolerations(f["tolerations"])
        if let gy = f["terminationGracePeriodSeconds"], let g = r.int(gy) {
            // The apiserver's range; minik caps it at an hour so a delete always ends.
            if g < 0 || g > 3600 { r.fail(gy, "terminationGracePeriodSeconds \(g) must be from 0 to 3600") } else { spec.terminationGracePeriodSeconds = g }
        }
        return (spec, nodeNameY, nameservers)
    }

    func containerList(_ y: YNode?, names: inout [String: YNode]) -> [ContainerSpec] {
        guard let items = r.sequence(y) else { return [] }
        var out: [ContainerSpec] = []
        var ports: [String: YNode] = [:]
        for item in items {
            guard let c = container(item) else { continue }
            if let first = names[c.name] {
                r.fail(item, "container name \"\(c.name)\" is used twice in this pod (first at line \(first.node.mark?.line ?? 0))")
                continue
            }
            names[c.name] = item
            for p in c.ports {
                let key = "\(p.containerPort)/\(p.proto)"
                if let first = ports[key] {
                    r.fail(item, "containerPort \(key) is declared twice in this pod (first at line \(first.node.mark?.line ?? 0)); containers of a pod share one network namespace")
                }
                ports[key] = item
            }
            out.append(c)
        }
        return out
    }

    func container(_ y: YNode) -> ContainerSpec? {
        let later = "not implemented by minik yet"
        guard let f = r.mapping(y, "a container", known: ["name", "image", "command", "args", "env", "ports", "workingDir", "securityContext", "resources",
                                                         "readinessProbe", "livenessProbe", "stdin", "stdinOnce", "tty"], ignored: [
            "startupProbe": later, "imagePullPolicy": "images are local to minik", "volumeMounts": later,
            "lifecycle": later,
            "terminationMessagePath": later, "terminationMessagePolicy": later, "envFrom": later,
            "volumeDevices": later, "resizePolicy": later, "restartPolicy": later,
        ]) else { return nil }
        guard let ny = f["name"], let name = r.string(ny) else {
            r.fail(y, "container name is required")
            return nil
        }
        if !DNS.isLabel(name) { r.fail(ny, DNS.labelProblem(name, what: "container name")) }
        guard let iy = f["image"], let image = r.string(iy), !image.isEmpty else {
            r.fail(f["image"] ?? y, "container \"\(name)\": image is required")
            return nil
        }
        if let problem = ImageReference.problem(image) {
            r.fail(iy, "image \"\(image)\" is not an image reference: \(problem)")
        }
        let env = envList(f["env"])
        var ports: [ContainerPort] = []
        for p in r.sequence(f["ports"]) ?? [] {
            guard let pf = r.mapping(p, "a container port", known: ["name", "containerPort", "protocol"], ignored: [
                "hostPort": "use extraPortMappings and NodePort services", "hostIP": "not used by minik",
            ]) else { continue }
            guard let cp = r.int(pf["containerPort"]) else {
                if pf["containerPort"] == nil { r.fail(p, "containerPort is required") }
                continue
            }
            if !(1...65535).contains(cp) { r.fail(pf["containerPort"], "containerPort \(cp) is out of range (1-65535)") }
            var pname: String?
            if let pny = pf["name"], let s = r.string(pny) {
                if DNS.isPortName(s) { pname = s } else {
                    r.fail(pny, "port name \"\(s)\" is not valid (at most 15 characters: a-z, 0-9 and '-', with at least one letter)")
                }
            }
            ports.append(ContainerPort(name: pname, containerPort: cp, proto: protocolName(pf["protocol"]) ?? "TCP"))
        }
        var c = ContainerSpec(name: name, image: image, command: r.cStringList(f["command"]) ?? [],
                               args: r.cStringList(f["args"]) ?? [], env: env, ports: ports,
                               workingDir: r.cString(f["workingDir"]), source: r.location(iy))
        c.stdin = r.bool(f["stdin"]) ?? false
        c.stdinOnce = r.bool(f["stdinOnce"]) ?? false
        c.tty = r.bool(f["tty"]) ?? false
        if let py = f["readinessProbe"] { c.readinessProbe = probe(py, liveness: false, ports: ports) }
        if let py = f["livenessProbe"] { c.livenessProbe = probe(py, liveness: true, ports: ports) }
        if let sy = f["securityContext"], let sf = r.mapping(sy, "securityContext", known: ["privileged", "capabilities"], ignored: [
            "runAsUser": later, "runAsGroup": later, "runAsNonRoot": later, "readOnlyRootFilesystem": later,
            "allowPrivilegeEscalation": later, "seccompProfile": later, "seLinuxOptions": later, "procMount": later,
            "appArmorProfile": later, "windowsOptions": later,
        ]) {
            c.privileged = r.bool(sf["privileged"]) ?? false
            if let cy = sf["capabilities"], let cf = r.mapping(cy, "capabilities", known: ["add", "drop"]) {
                for (key, list) in [("add", cf["add"]), ("drop", cf["drop"])] {
                    for item in r.sequence(list) ?? [] {
                        guard let name = r.string(item) else { continue }
                        guard let cap = Capabilities.normalize(name) else {
                            r.fail(item, "unknown capability \"\(name)\" (valid: \(Capabilities.names.joined(separator: ", ")) or ALL)")
                            continue
                        }
                        if key == "add" { c.capabilitiesAdd.append(cap) } else { c.capabilitiesDrop.append(cap) }
                    }
                }
            }
        }
        if let ry = f["resources"] { (c.memoryLimit, c.ephemeralStorageLimit) = resources(ry) }
        return c
    }

    // MARK: cluster-wide validation and placement

    /// apply: the running cluster's spec with these documents' pods, deployments and
    /// namespaces added or replaced. A pod that does not change keeps its node. The
    /// cluster DNS objects stay; documents may not replace them.
    mutating func finishApply(_ base: ClusterSpec) -> ClusterSpec? {
        var out = base
        let applied = Set(pods.map(\.spec.key))
        let owners = Set(unexpanded.map { "\($0.deployment.namespace)/\($0.deployment.owner)" })
        let staying = base.pods.filter { !applied.contains($0.key) && !owners.contains("\($0.namespace)/\($0.owner ?? "")") }
        checkDeploymentCapacity(nodes: base.nodes.count, others: staying.count)
        refuseClusterDNSNames(enabled: base.dns.enabled)
        checkNameservers(in: out)
        for var d in deployments {
            // The controllers' record stays: a changed template rolls out from it.
            if let old = base.deployments.first(where: { $0.key == d.key }) {
                d.replicaSets = old.replicaSets
                d.created = old.created
            }
            if let i = out.deployments.firstIndex(where: { $0.key == d.key }) { out.deployments[i] = d } else { out.deployments.append(d) }
        }
        placePods(into: &out)
        // Its pods come with the supervisor's next pass; here only whether they can be placed.
        _ = rollOut(out, keys: Set(deployments.map(\.key)), ready: true)
        finishServices(into: &out)
        finishNetworkPolicies(into: &out)
        for n in namespaces where !out.namespaces.contains(n) { out.namespaces.append(n) }
        for p in out.pods where !out.namespaces.contains(p.namespace) { out.namespaces.append(p.namespace) }
        for s in out.services where !out.namespaces.contains(s.namespace) { out.namespaces.append(s.namespace) }
        for p in out.networkPolicies where !out.namespaces.contains(p.namespace) { out.namespaces.append(p.namespace) }
        out.warnings = r.warnings
        return out
    }

    mutating func finish() -> ClusterSpec? {
        refuseAPIServiceName()
        if let base { return finishApply(base) }
        checkDeploymentCapacity(nodes: max(nodes?.count ?? 1, 1), others: dns.enabled ? dns.replicas : 0)
        refuseClusterDNSNames(enabled: dns.enabled)
        let clusterAt = nameAt ?? clusterDoc
        if !DNS.isLabel(name) {
            r.fail(clusterAt, DNS.labelProblem(name, what: "cluster name"))
        } else if name.utf8.count > SpecLoader.maxClusterNameLength {
            r.fail(clusterAt, "cluster name \"\(name)\" is \(name.utf8.count) bytes; minik derives interface names from it (\"br-\(name)\", \"\(name)-255\"), which the kernel limits to 15 bytes, so it may have at most \(SpecLoader.maxClusterNameLength)")
        }
        let raw = nodes ?? [RawNode(role: .controlPlane, labels: [:], portMappings: [], at: clusterDoc ?? YNode(.scalar(.init("")), path: ""))]
        if raw.isEmpty {
            r.fail(nodesAt, "the cluster has zero nodes (list at least one node with role control-plane)")
        } else if !raw.contains(where: { $0.role == .controlPlane }) {
            r.fail(nodesAt, "the cluster needs a control-plane node (kind requires one)")
        }
        // Subnets.
        let nodeCount = raw.count
        if podSubnet.prefix > 24 {
            r.fail(podSubnetAt ?? clusterAt, "podSubnet \(podSubnet) is smaller than one node's /24 podCIDR (use a prefix of /24 or shorter, e.g. 10.244.0.0/16)")
        } else if podSubnet.subnetCount(prefix: 24) < UInt64(nodeCount) {
            r.fail(podSubnetAt ?? clusterAt, "podSubnet \(podSubnet) holds \(podSubnet.subnetCount(prefix: 24)) node podCIDRs (/24) but the cluster has \(nodeCount) nodes")
        }
        if nodeCount > 256 {
            r.fail(nodesAt, "the cluster has \(nodeCount) nodes; minik supports at most 256")
        }
        if network.underlaySubnet.size < UInt64(nodeCount) + 4 {
            r.fail(underlayAt ?? configDoc, "underlaySubnet \(network.underlaySubnet) is too small for \(nodeCount) nodes (it needs a gateway, the nodes and an external host)")
        }
        let loopback = try! IPv4CIDR.parse("127.0.0.0/8")
        let subnets: [(String, IPv4CIDR, YNode?)] = [
            ("podSubnet", podSubnet, podSubnetAt ?? clusterAt), ("serviceSubnet", serviceSubnet, serviceSubnetAt ?? clusterAt),
            ("underlaySubnet", network.underlaySubnet, underlayAt ?? configDoc),
        ]
        for i in 0..<subnets.count {
            if subnets[i].1.overlaps(loopback) {
                r.fail(subnets[i].2, "\(subnets[i].0) \(subnets[i].1) overlaps the loopback range 127.0.0.0/8")
            }
            for j in (i + 1)..<subnets.count where subnets[i].1.overlaps(subnets[j].1) {
                r.fail(subnets[j].2, "\(subnets[j].0) \(subnets[j].1) overlaps \(subnets[i].0) \(subnets[i].1)")
            }
        }
        checkDNSSettings(serviceSubnet: serviceSubnet, podSubnet: podSubnet, underlay: network.underlaySubnet, clusterAt: clusterAt)
        // Nodes, named as kind names them.
        var specs: [NodeSpec] = []
        var cp = 0, workers = 0
        var hostPorts: [String: YNode] = [:]
        for (i, n) in raw.enumerated() {
            let nodeName: String
            switch n.role {
            case .controlPlane:
                cp += 1
                nodeName = cp == 1 ? "\(name)-control-plane" : "\(name)-control-plane\(cp)"
            case .worker:
                workers += 1
                nodeName = workers == 1 ? "\(name)-worker" : "\(name)-worker\(workers)"
            }
            var labels = n.labels
            labels["kubernetes.io/hostname"] = nodeName
            labels["kubernetes.io/os"] = "linux"
            if n.role == .controlPlane { labels["node-role.kubernetes.io/control-plane"] = "" }
            for m in n.portMappings {
                let key = "\(m.hostPort)/\(m.proto)"
                if let first = hostPorts[key] {
                    r.fail(n.at, "hostPort \(key) is mapped twice (first by the node at line \(first.node.mark?.line ?? 0))")
                }
                hostPorts[key] = n.at
            }
            let podCIDR = podSubnet.subnet(i, prefix: 24) ?? IPv4CIDR(network: IPv4Address(0), prefix: 24)
            specs.append(NodeSpec(name: nodeName, role: n.role, index: i, labels: labels, podCIDR: podCIDR,
                                  internalIP: network.underlaySubnet.address(UInt32(i + 2)), extraPortMappings: n.portMappings))
        }
        var out = ClusterSpec(name: name, nodes: specs, podSubnet: podSubnet, serviceSubnet: serviceSubnet,
                              disableDefaultCNI: disableDefaultCNI, kubeProxyMode: kubeProxyMode, network: network,
                              namespaces: namespaces, pods: [], deployments: deployments,
                              restartBackoffSeconds: restartBackoff, dns: dns, warnings: [])
        out.apiServerAddress = apiServerAddress
        out.apiServerPort = apiServerPort
        checkNameservers(in: out)
        // The DNS pods first, so that they always have their place on the control-plane,
        // then the documents' pods and the Deployments' pods; listed in the other order
        // (what the user wrote comes first).
        let system = clusterDNSObjects(for: out)
        let userDeployments = Set(out.deployments.map(\.key))
        if let system {
            out.deployments.append(system.deployment)
            out = rollOut(out, keys: [system.deployment.key])
        }
        let systemPods = out.pods.count
        placePods(into: &out)
        out = rollOut(out, keys: userDeployments)
        out.pods = Array(out.pods[systemPods...]) + out.pods[..<systemPods]
        finishServices(into: &out)
        finishNetworkPolicies(into: &out)
        if let system { out.services.append(system.service) }
        for p in out.pods where !out.namespaces.contains(p.namespace) { out.namespaces.append(p.namespace) }
        for s in out.services where !out.namespaces.contains(s.namespace) { out.namespaces.append(s.namespace) }
        for p in out.networkPolicies where !out.namespaces.contains(p.namespace) { out.namespaces.append(p.namespace) }
        out.warnings = r.warnings
        return out
    }

    /// Adds the documents' pods to `out`, as `up` and `apply` both do: duplicates, nodeName,
    /// placement (ClusterSpec.place: nodeName, else the least loaded eligible node), the
    /// node's capacity. A pod already in `out` and unchanged keeps its node; a changed one
    /// is replaced.
    func placePods(into out: inout ClusterSpec) {
        var seen: [String: RawPod] = [:]
        var load = out.load
        var full = Set<String>()
        // Looked up by key, and the replaced ones removed once at the end: a Deployment
        // of thousands of pods is placed in linear time.
        let existingPods = Dictionary(out.pods.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        var replaced = Set<String>()
        var added: [PodSpec] = []
        defer { out.pods = (replaced.isEmpty ? out.pods : out.pods.filter { !replaced.contains($0.key) }) + added }
        for p in pods {
            if let first = seen[p.spec.key] {
                r.fail(p.at, "pod \(p.spec.key) is defined twice (first at \(first.spec.source.file):\(first.spec.source.line))")
                continue
            }
            seen[p.spec.key] = p
            var spec = p.spec
            if let existing = existingPods[spec.key] {
                var same = existing
                same.source = spec.source
                same.nodeName = spec.requestedNodeName ?? ""
                if same == spec { continue } // unchanged: stays where it runs
                replaced.insert(spec.key)
                load[existing.nodeName, default: 1] -= 1
            }
            if let want = spec.requestedNodeName, out.node(named: want) == nil {
                r.fail(p.nodeNameAt, "nodeName \"\(want)\" is not a node of this cluster (nodes: \(out.nodes.map(\.name).joined(separator: ", ")))")
                continue
            }
            guard let nodeName = out.place(spec, load: load), let node = out.node(named: nodeName) else {
                r.fail(p.at, "no node matches nodeSelector \(spec.nodeSelector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))")
                continue
            }
            let count = (load[nodeName] ?? 0) + 1
            if count > SpecLoader.podsPerNode {
                if full.insert(nodeName).inserted {
                    r.fail(p.at, "pod \(spec.key) would be pod number \(count) on node \(nodeName), whose podCIDR \(node.podCIDR) holds \(SpecLoader.podsPerNode) pods (add nodes or spread the pods)")
                }
                continue
            }
            load[nodeName] = count
            spec.nodeName = nodeName
            added.append(spec)
        }
    }
}

// MARK: - names

public enum DNS {
    /// RFC 1123 label as Kubernetes validates it: at most 63 characters, lower-case
    /// alphanumerics and '-', starting and ending with an alphanumeric.
    public static func isLabel(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 63 else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
        return alnum(u.first!) && alnum(u.last!) && u.allSatisfy { alnum($0) || $0 == 45 }
    }

    public static func labelProblem(_ s: String, what: String) -> String {
        "\(what) \"\(s)\" is not a DNS-1123 label (at most 63 characters: a-z, 0-9 and '-', starting and ending with a letter or digit)"
    }

    /// IANA service name, as Kubernetes validates container port names.
    public static func isPortName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 15, u.first != 45, u.last != 45 else { return false }
        guard u.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }) else { return false }
        guard u.contains(where: { $0 >= 97 && $0 <= 122 }) else { return false }
        return !s.contains("--")
    }
}
