// Cluster DNS in the spec: MinikConfig dns (decoded strictly, checked once the subnets are
// known), a pod's dnsPolicy and dnsConfig (validated as Kubernetes validates them), and
// the system objects `up` adds when DNS is on: the Service kube-system/kube-dns on the
// serviceSubnet's tenth address and the Deployment kube-system/minik-dns on the first
// control-plane (kind runs CoreDNS there). Pure: nothing here touches the system.

/// Names and shapes of minik's cluster DNS objects.
public enum ClusterDNS {
    public static let namespace = "kube-system"
    public static let serviceName = "kube-dns"
    public static let deploymentName = "minik-dns"
    public static var serviceKey: String { "\(namespace)/\(serviceName)" }
    public static var deploymentKey: String { "\(namespace)/\(deploymentName)" }
    /// The label the service selects the DNS pods by (as kube-dns and CoreDNS do).
    public static let selector = ["k8s-app": "kube-dns"]
    public static let image = "minik-dns"
    public static let containerName = "dns"
    /// The directory of the cluster's state directory the DNS pods read (bind-mounted
    /// read-only at configDir), and the zone file in it.
    public static let stateSubpath = "dns"
    public static let configDir = "/etc/minik-dns"
    public static var zonePath: String { "\(configDir)/zone" }
    public static let port = 53
    public static let maxUpstreams = 3
    public static let replicaRange = 1...10
    public static let ttlRange = 0...3600
    /// Where the system objects were "written": by minik itself.
    public static let source = SourceLocation(file: "<minik>", line: 0, column: 0, field: "")

    /// The message for a user document that would take one of the system objects' names.
    static func reserved(_ what: String) -> String {
        "\(what); to run your own, set dns.enabled: false in MinikConfig"
    }

    /// The Service kube-system/kube-dns: UDP and TCP 53 on the DNS service address.
    public static func service(serviceSubnet: IPv4CIDR) -> ServiceSpec {
        var s = ServiceSpec(namespace: namespace, name: serviceName, source: source)
        s.labels = ["k8s-app": "kube-dns", "kubernetes.io/name": "minik-dns"]
        s.selector = selector
        s.type = .clusterIP
        s.clusterIP = SpecLoader.dnsServiceIP(serviceSubnet)
        s.ports = [
            ServicePort(name: "dns", proto: "UDP", port: port, targetPort: .name("dns")),
            ServicePort(name: "dns-tcp", proto: "TCP", port: port, targetPort: .name("dns-tcp")),
        ]
        return s
    }

    /// The Deployment kube-system/minik-dns: `replicas` pods of the minik-dns image on
    /// `node`, resolving through the node's resolver (dnsPolicy Default), reading the zone
    /// the supervisor writes to <cluster state dir>/dns.
    public static func deployment(replicas: Int, node: String) -> DeploymentSpec {
        var readiness = Probe(action: .tcpSocket(port: .name("dns-tcp")))
        readiness.periodSeconds = 1
        readiness.failureThreshold = 3
        var liveness = Probe(action: .tcpSocket(port: .number(port)))
        liveness.periodSeconds = 10
        liveness.failureThreshold = 5
        liveness.initialDelaySeconds = 5
        var c = ContainerSpec(name: containerName, image: image, command: [], args: ["--zone", zonePath], env: [],
                              ports: [ContainerPort(name: "dns", containerPort: port, proto: "UDP"),
                                      ContainerPort(name: "dns-tcp", containerPort: port, proto: "TCP")],
                              workingDir: nil, source: source)
        c.readinessProbe = readiness
        c.livenessProbe = liveness
        c.clusterDirMounts = [ClusterDirMount(subpath: stateSubpath, mountPath: configDir, readOnly: true)]
        var template = PodSpec(
            namespace: namespace, name: "\(deploymentName)-0", labels: selector, annotations: [:],
            nodeName: node, requestedNodeName: node, nodeSelector: [:], containers: [c], initContainers: [],
            restartPolicy: "Always", hostname: nil, subdomain: nil, owner: "Deployment/\(deploymentName)", source: source)
        template.dnsPolicy = .default
        return DeploymentSpec(namespace: namespace, name: deploymentName, replicas: replicas, selector: selector, template: template,
                              labels: ["k8s-app": "kube-dns"])
    }
}

extension Builder {
    // MARK: MinikConfig dns

    mutating func dnsSettings(_ y: YNode) {
        guard let f = r.mapping(y, "MinikConfig dns", known: ["enabled", "clusterDomain", "upstream", "ttl", "replicas"]) else { return }
        if let b = r.bool(f["enabled"]) { dns.enabled = b }
        if let dy = f["clusterDomain"], let d = r.string(dy) {
            if DNS.isSubdomain(d) { dns.clusterDomain = d } else {
                r.fail(dy, "clusterDomain \"\(d)\" is not a DNS name (lower-case labels of a-z, 0-9 and '-' separated by dots, no trailing dot, at most 253 characters)")
            }
        }
        if let uy = f["upstream"], let items = r.sequence(uy) {
            if items.count > ClusterDNS.maxUpstreams {
                r.fail(uy, "upstream lists \(items.count) addresses; at most \(ClusterDNS.maxUpstreams)")
            }
            for item in items {
                guard let text = r.string(item) else { continue }
                guard let u = Self.upstream(text) else {
                    r.fail(item, "upstream \"\(text)\" is not an IPv4 address or IPv4:port (e.g. 172.18.0.1 or 172.18.0.1:5353)")
                    continue
                }
                if dns.upstreams.contains(u) {
                    r.fail(item, "upstream \(u) is listed twice")
                    continue
                }
                dns.upstreams.append(u)
                upstreamsAt.append(item)
            }
        }
        if let ty = f["ttl"], let t = r.int(ty) {
            if ClusterDNS.ttlRange.contains(t) { dns.ttl = t } else {
                r.fail(ty, "ttl \(t) is out of range (0-3600 seconds)")
            }
        }
        if let ry = f["replicas"], let n = r.int(ry) {
            if ClusterDNS.replicaRange.contains(n) { dns.replicas = n } else {
                r.fail(ry, "replicas \(n) is out of range (1-10)")
            }
        }
    }

    /// "a.b.c.d" (port 53) or "a.b.c.d:port".
    static func upstream(_ text: String) -> DNSUpstream? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let ip = IPv4Address(String(parts[0])) else { return nil }
        guard parts.count == 2 else { return DNSUpstream(ip: ip) }
        guard !parts[1].isEmpty, parts[1].count <= 5, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
        return DNSUpstream(ip: ip, port: port)
    }

    // MARK: a pod's dnsPolicy and dnsConfig

    /// Decodes spec.dnsPolicy and spec.dnsConfig of a pod (or pod template). The
    /// nameservers' places are returned: whether they lie inside the cluster's networks is
    /// checked once the subnets are known.
    func podDNS(_ f: [String: YNode]) -> (DNSPolicy, PodDNSConfig?, [(IPv4Address, YNode)]) {
        var policy = DNSPolicy.clusterFirst
        if let py = f["dnsPolicy"], let s = r.string(py) {
            if let p = DNSPolicy(rawValue: s) { policy = p } else {
                r.fail(py, "dnsPolicy \"\(s)\" is not valid (use ClusterFirst, ClusterFirstWithHostNet, Default or None)")
            }
        }
        var places: [(IPv4Address, YNode)] = []
        guard let cy = f["dnsConfig"] else {
            if policy == .none { r.fail(f["dnsPolicy"], "dnsPolicy None needs a dnsConfig with at least one nameserver") }
            return (policy, nil, [])
        }
        guard let cf = r.mapping(cy, "dnsConfig", known: ["nameservers", "searches", "options"]) else { return (policy, nil, []) }
        var config = PodDNSConfig()
        if let ny = cf["nameservers"], let items = r.sequence(ny) {
            if items.count > ResolvConf.maxNameservers {
                r.fail(ny, "dnsConfig has \(items.count) nameservers; at most \(ResolvConf.maxNameservers)")
            }
            for item in items {
                guard let text = r.string(item) else { continue }
                guard let ip = IPv4Address(text) else {
                    r.fail(item, "nameserver \"\(text)\" is not an IPv4 address (minik is IPv4 only)")
                    continue
                }
                config.nameservers.append(ip)
                places.append((ip, item))
            }
        }
        if policy == .none && config.nameservers.isEmpty && (r.sequence(cf["nameservers"]) ?? []).isEmpty {
            r.fail(cf["nameservers"] ?? cy, "dnsPolicy None needs at least one nameserver in dnsConfig.nameservers")
        }
        if let sy = cf["searches"], let items = r.sequence(sy) {
            if items.count > ResolvConf.maxSearches {
                r.fail(sy, "dnsConfig has \(items.count) search domains; at most \(ResolvConf.maxSearches)")
            }
            for item in items {
                guard let text = r.string(item) else { continue }
                // A trailing dot is fine (Kubernetes allows it: the name is absolute).
                let name = text.hasSuffix(".") ? String(text.dropLast()) : text
                if DNS.isSubdomain(name) { config.searches.append(text) } else {
                    r.fail(item, "search domain \"\(text)\" is not a DNS name (lower-case labels of a-z, 0-9 and '-' separated by dots, at most 253 characters)")
                }
            }
            let length = config.searches.joined(separator: " ").utf8.count
            if length > ResolvConf.maxSearchCharacters {
                r.fail(sy, "dnsConfig searches are \(length) characters long together; at most \(ResolvConf.maxSearchCharacters)")
            }
        }
        for item in r.sequence(cf["options"]) ?? [] {
            guard let of = r.mapping(item, "a dnsConfig option", known: ["name", "value"]) else { continue }
            guard let ny = of["name"], let name = r.string(ny), !name.isEmpty else {
                r.fail(of["name"] ?? item, "a dnsConfig option needs a name (e.g. ndots, edns0)")
                continue
            }
            if name.contains(where: { $0.isWhitespace || $0 == ":" }) {
                r.fail(ny, "option name \"\(name)\" must not contain spaces or ':'")
                continue
            }
            let value = r.string(of["value"])
            if let v = value, v.contains(where: \.isWhitespace) {
                r.fail(of["value"], "option value \"\(v)\" must not contain spaces")
                continue
            }
            config.options.append(DNSOption(name: name, value: value))
        }
        return (policy, config, places)
    }

    // MARK: cluster-wide checks and system objects

    /// "... is outside the cluster's networks ...", or nil when `ip` lies inside the pod,
    /// service or underlay subnet.
    static func outsideNetworks(_ what: String, _ ip: IPv4Address, podSubnet: IPv4CIDR, serviceSubnet: IPv4CIDR,
                                underlay: IPv4CIDR) -> String? {
        if podSubnet.contains(ip) || serviceSubnet.contains(ip) || underlay.contains(ip) { return nil }
        return "\(what) \(ip) is outside the cluster's networks (pod \(podSubnet), service \(serviceSubnet), underlay \(underlay)); minik sends no traffic outside its own namespaces"
    }

    /// Every dnsConfig nameserver of the documents lies inside the cluster's networks.
    func checkNameservers(in out: ClusterSpec) {
        for (ip, at) in nameserversAt {
            if let why = Self.outsideNetworks("nameserver", ip, podSubnet: out.podSubnet, serviceSubnet: out.serviceSubnet,
                                              underlay: out.network.underlaySubnet) {
                r.fail(at, why)
            }
        }
    }

    /// up: the MinikConfig dns settings against the subnets.
    func checkDNSSettings(serviceSubnet: IPv4CIDR, podSubnet: IPv4CIDR, underlay: IPv4CIDR, clusterAt: YNode?) {
        for (u, at) in zip(dns.upstreams, upstreamsAt) {
            if let why = Self.outsideNetworks("upstream", u.ip, podSubnet: podSubnet, serviceSubnet: serviceSubnet, underlay: underlay) {
                r.fail(at, why)
            } else if dns.enabled && u.ip == SpecLoader.dnsServiceIP(serviceSubnet) {
                r.fail(at, "upstream \(u.ip) is the cluster DNS service itself (kube-system/kube-dns): it would forward queries to itself")
            }
        }
        // The DNS service takes the tenth address: the subnet must hold it (a /28 or wider).
        if dns.enabled && serviceSubnet.size <= 11 {
            r.fail(serviceSubnetAt ?? clusterAt, "serviceSubnet \(serviceSubnet) has no room for the cluster DNS service, which takes its tenth address (use a /28 or wider, or set dns.enabled: false in MinikConfig)")
        }
    }

    /// With cluster DNS on, the documents may not define its Service or its Deployment:
    /// each is refused at its place and left out. (Pods may have any name: the
    /// Deployment's pods get names no other pod has.)
    mutating func refuseClusterDNSNames(enabled: Bool) {
        guard enabled else { return }
        var kept: [RawService] = []
        for raw in services {
            if raw.spec.key == ClusterDNS.serviceKey {
                r.fail(raw.at, ClusterDNS.reserved("\(ClusterDNS.serviceKey) is minik's cluster DNS service"))
            } else {
                kept.append(raw)
            }
        }
        services = kept
        let owner = "Deployment/\(ClusterDNS.deploymentName)"
        if deployments.contains(where: { $0.key == ClusterDNS.deploymentKey }) {
            r.fail(deploymentAt[ClusterDNS.deploymentKey], ClusterDNS.reserved("\(ClusterDNS.deploymentKey) is minik's cluster DNS deployment"))
            deployments.removeAll { $0.key == ClusterDNS.deploymentKey }
            pods.removeAll { $0.spec.namespace == ClusterDNS.namespace && $0.spec.owner == owner }
        }
    }

    /// up: the cluster DNS Service and its Deployment (its pods on the first control-plane), or nil when DNS is off (or the cluster has no room for it, which
    /// has been reported).
    func clusterDNSObjects(for out: ClusterSpec) -> (service: ServiceSpec, deployment: DeploymentSpec)? {
        guard out.dns.enabled, let node = out.nodes.first(where: { $0.role == .controlPlane }),
              out.serviceSubnet.size > 11 else { return nil }
        return (ClusterDNS.service(serviceSubnet: out.serviceSubnet), ClusterDNS.deployment(replicas: out.dns.replicas, node: node.name))
    }
}
