// Decoding Services and container probes, and giving services their addresses: a
// ClusterIP from serviceSubnet (the one asked for, or one allocated from a hash of the
// name), node ports from 30000-32767 the same way. Everything is checked against the
// whole cluster (taken addresses and ports, subnets) before anything is created.
import Foundation

extension Builder {
    // MARK: Service

    mutating func service(_ doc: YNode) {
        guard let f = r.mapping(doc, "Service", known: ["kind", "apiVersion", "metadata", "spec"], ignored: ["status": "status is not input"]) else { return }
        guard let md = f["metadata"], let meta = metadata(md, namespaced: true), !meta.name.isEmpty else {
            if f["metadata"] == nil { r.fail(doc, "metadata.name is required") }
            return
        }
        var s = ServiceSpec(namespace: meta.namespace, name: meta.name, source: r.location(doc))
        s.labels = meta.labels
        s.annotations = meta.annotations
        var raw = RawService(spec: s, at: md, clusterIPAt: nil, nodePortAt: [:], externalIPsAt: [])
        guard let sy = f["spec"] else {
            r.fail(doc, "spec is required (a Service needs spec.ports, and spec.selector to pick pods)")
            return
        }
        let lb = "minik has no load balancers"
        guard let sf = r.mapping(sy, "Service spec", known: [
            "type", "selector", "ports", "clusterIP", "clusterIPs", "sessionAffinity", "sessionAffinityConfig",
            "publishNotReadyAddresses", "externalIPs", "externalName", "externalTrafficPolicy",
            "internalTrafficPolicy", "ipFamilies", "ipFamilyPolicy",
        ], ignored: [
            "loadBalancerIP": lb, "loadBalancerSourceRanges": lb, "loadBalancerClass": lb,
            "allocateLoadBalancerNodePorts": lb, "healthCheckNodePort": "minik has no load balancer to probe it (kube-proxy's health check port is not served)",
            "trafficDistribution": "minik has no topology", "topologyKeys": "minik has no topology",
        ]) else { return }
        if let ty = sf["type"], let t = r.string(ty) {
            if let st = ServiceType(rawValue: t) {
                s.type = st
                if st == .loadBalancer {
                    r.warn(ty, "minik has no load balancer: the service works as a NodePort and its EXTERNAL-IP stays <pending>")
                }
            } else {
                r.fail(ty, "type \"\(t)\" is not valid (use ClusterIP, NodePort, LoadBalancer or ExternalName)")
            }
        }
        if let sel = sf["selector"] {
            if let m = labels(sel) { s.selector = m }
        }
        var policies: [String: (TrafficPolicy, YNode)] = [:]
        for field in ["externalTrafficPolicy", "internalTrafficPolicy"] {
            guard let py = sf[field], let v = r.string(py) else { continue }
            if let tp = TrafficPolicy(rawValue: v) {
                policies[field] = (tp, py)
            } else {
                r.fail(py, "\(field) \"\(v)\" is not valid (use Cluster or Local)")
            }
        }
        s.internalTrafficPolicy = policies["internalTrafficPolicy"]?.0
        for item in r.sequence(sf["ipFamilies"]) ?? [] {
            if let fam = r.string(item), fam != "IPv4" { r.fail(item, "ip family \"\(fam)\" is not supported (minik is IPv4 only)") }
        }
        if let py = sf["ipFamilyPolicy"], let v = r.string(py), v != "SingleStack" {
            r.fail(py, "ipFamilyPolicy \"\(v)\" is not supported (minik is IPv4 only: use SingleStack)")
        }
        clusterIP(sf, into: &s, raw: &raw)
        if let ny = sf["externalName"], let n = r.string(ny) {
            if s.type != .externalName {
                r.fail(ny, "externalName is only for type ExternalName")
            } else if !DNS.isSubdomain(n) {
                r.fail(ny, "externalName \"\(n)\" is not a DNS name (lower-case labels of a-z, 0-9 and '-', separated by dots)")
            } else {
                s.externalName = n
            }
        } else if s.type == .externalName {
            r.fail(sy, "a Service of type ExternalName needs spec.externalName")
        }
        ports(sf, into: &s, raw: &raw, at: sy)
        if let ay = sf["sessionAffinity"], let a = r.string(ay) {
            switch a {
            case "None": s.clientIPAffinity = false
            case "ClientIP": s.clientIPAffinity = true
            default: r.fail(ay, "sessionAffinity \"\(a)\" is not valid (use None or ClientIP)")
            }
        }
        if let cy = sf["sessionAffinityConfig"], let cf = r.mapping(cy, "sessionAffinityConfig", known: ["clientIP"]),
           let iy = cf["clientIP"], let inf = r.mapping(iy, "sessionAffinityConfig.clientIP", known: ["timeoutSeconds"]),
           let ty = inf["timeoutSeconds"], let t = r.int(ty) {
            if !s.clientIPAffinity {
                r.fail(ty, "sessionAffinityConfig needs sessionAffinity: ClientIP")
            } else if !(1...86400).contains(t) {
                r.fail(ty, "timeoutSeconds \(t) is out of range (1-86400)")
            } else {
                s.affinityTimeoutSeconds = t
            }
        }
        s.publishNotReadyAddresses = r.bool(sf["publishNotReadyAddresses"]) ?? false
        for item in r.sequence(sf["externalIPs"]) ?? [] {
            guard let text = r.string(item) else { continue }
            guard let ip = IPv4Address(text) else {
                r.fail(item, "externalIP \"\(text)\" is not an IPv4 address")
                continue
            }
            if s.externalIPs.contains(ip) { r.fail(item, "externalIP \(ip) is listed twice") }
            s.externalIPs.append(ip)
            raw.externalIPsAt.append(item)
        }
        if !s.externalIPs.isEmpty && s.type == .externalName { r.fail(sf["externalIPs"], "an ExternalName service has no externalIPs") }
        if let (tp, py) = policies["externalTrafficPolicy"] {
            if tp == .local && !s.isExternallyAccessible {
                r.fail(py, "externalTrafficPolicy Local may only be set for externally-accessible services (type NodePort or LoadBalancer, or with externalIPs)")
            }
            s.externalTrafficPolicy = tp
        }
        raw.spec = s
        if !serviceKeys.insert(s.key).inserted {
            r.fail(md, "service \(s.key) is defined twice")
            return
        }
        services.append(raw)
    }

    private func clusterIP(_ sf: [String: YNode], into s: inout ServiceSpec, raw: inout RawService) {
        var text: String?
        if let cy = sf["clusterIP"] {
            text = r.string(cy)
            raw.clusterIPAt = cy
        }
        if let ly = sf["clusterIPs"], let list = r.stringList(ly) {
            if list.count > 1 { r.fail(ly, "clusterIPs has \(list.count) addresses; minik is IPv4 single-stack (one)") }
            if let first = list.first {
                if let t = text, t != first { r.fail(ly, "clusterIPs[0] \(first) differs from clusterIP \(t)") }
                text = first
                raw.clusterIPAt = raw.clusterIPAt ?? ly
            }
        }
        guard let t = text, !t.isEmpty else { return }
        if t == "None" {
            if s.type != .clusterIP {
                r.fail(raw.clusterIPAt, "clusterIP None (a headless service) needs type ClusterIP, not \(s.type.rawValue)")
            }
            s.headless = true
            return
        }
        if s.type == .externalName {
            r.fail(raw.clusterIPAt, "an ExternalName service has no clusterIP")
            return
        }
        guard let ip = IPv4Address(t) else {
            r.fail(raw.clusterIPAt, "clusterIP \"\(t)\" is not an IPv4 address (or None for a headless service)")
            return
        }
        s.clusterIP = ip // checked against serviceSubnet and other services in finishServices
    }

    private func ports(_ sf: [String: YNode], into s: inout ServiceSpec, raw: inout RawService, at sy: YNode) {
        let items = r.sequence(sf["ports"]) ?? []
        if items.isEmpty && s.type != .externalName && !s.headless {
            r.fail(sf["ports"] ?? sy, "spec.ports is required: a \(s.type.rawValue) service needs at least one port")
        }
        var names: [String: YNode] = [:]
        var pairs: [String: YNode] = [:]
        for (i, item) in items.enumerated() {
            guard let pf = r.mapping(item, "a service port", known: ["name", "port", "targetPort", "protocol", "nodePort"],
                                     ignored: ["appProtocol": "minik proxies at layer 4"]) else { continue }
            var name = ""
            if let ny = pf["name"], let n = r.string(ny) {
                if !DNS.isLabel(n) { r.fail(ny, DNS.labelProblem(n, what: "port name")) }
                if let first = names[n] { r.fail(ny, "port name \"\(n)\" is used twice (first at line \(first.node.mark?.line ?? 0))") }
                names[n] = ny
                name = n
            } else if items.count > 1 {
                r.fail(item, "a service with several ports needs a name on each of them")
            }
            guard let py = pf["port"] else {
                r.fail(item, "port is required")
                continue
            }
            guard let port = r.int(py) else { continue }
            if !(1...65535).contains(port) { r.fail(py, "port \(port) is out of range (1-65535)") }
            let proto = protocolName(pf["protocol"]) ?? "TCP"
            if let first = pairs["\(port)/\(proto)"] {
                r.fail(py, "port \(port)/\(proto) is listed twice (first at line \(first.node.mark?.line ?? 0))")
            }
            pairs["\(port)/\(proto)"] = py
            var target = PortRef.number(port)
            if let ty = pf["targetPort"], case .scalar(let sc) = ty.node {
                if let n = Int(sc.string), sc.style == .plain {
                    if (1...65535).contains(n) { target = .number(n) } else { r.fail(ty, "targetPort \(n) is out of range (1-65535)") }
                } else if DNS.isPortName(sc.string) {
                    target = .name(sc.string)
                } else {
                    r.fail(ty, "targetPort \"\(sc.string)\" is neither a port number nor a port name (at most 15 characters: a-z, 0-9 and '-', with a letter)")
                }
            } else if let ty = pf["targetPort"] {
                r.fail(ty, "targetPort must be a port number or a container port's name")
            }
            var sp = ServicePort(name: name, proto: proto, port: port, targetPort: target)
            if let ny = pf["nodePort"], let np = r.int(ny) {
                if !s.hasNodePorts {
                    r.fail(ny, "nodePort is only for type NodePort or LoadBalancer (this service is \(s.type.rawValue))")
                } else if !ServiceSpec.nodePortRange.contains(np) {
                    r.fail(ny, "nodePort \(np) is out of range (30000-32767)")
                } else {
                    sp.nodePort = np
                    raw.nodePortAt[i] = ny
                }
            }
            s.ports.append(sp)
        }
    }

    // MARK: probes

    func probe(_ y: YNode, liveness: Bool, ports: [ContainerPort]) -> Probe? {
        guard let f = r.mapping(y, liveness ? "livenessProbe" : "readinessProbe", known: [
            "exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds", "periodSeconds", "timeoutSeconds",
            "successThreshold", "failureThreshold",
        ], ignored: ["terminationGracePeriodSeconds": "minik stops containers with its own grace period"]) else { return nil }
        let handlers = ["exec", "httpGet", "tcpSocket", "grpc"].filter { f[$0] != nil }
        guard handlers.count == 1 else {
            r.fail(y, handlers.isEmpty ? "a probe needs one of exec, httpGet or tcpSocket" : "a probe has one handler, not \(handlers.joined(separator: " and "))")
            return nil
        }
        func port(_ py: YNode?, in hy: YNode) -> PortRef? {
            guard let py else {
                r.fail(hy, "port is required")
                return nil
            }
            guard case .scalar(let sc) = py.node else {
                r.fail(py, "port must be a number or a container port's name")
                return nil
            }
            if let n = Int(sc.string), sc.style == .plain {
                guard (1...65535).contains(n) else {
                    r.fail(py, "port \(n) is out of range (1-65535)")
                    return nil
                }
                return .number(n)
            }
            guard ports.contains(where: { $0.name == sc.string }) else {
                r.fail(py, "port \"\(sc.string)\" is not the name of a port of this container (named ports: \(ports.compactMap(\.name).joined(separator: ", ").ifEmpty("none")))")
                return nil
            }
            return .name(sc.string)
        }
        var action: Probe.Action
        if let ey = f["exec"] {
            guard let ef = r.mapping(ey, "exec", known: ["command"]), let cmd = r.cStringList(ef["command"]), !cmd.isEmpty else {
                r.fail(ey, "exec.command is required (a command and its arguments)")
                return nil
            }
            action = .exec(cmd)
        } else if let hy = f["httpGet"] {
            guard let hf = r.mapping(hy, "httpGet", known: ["path", "port", "scheme", "host", "httpHeaders"]) else { return nil }
            if let sy = hf["scheme"], let sch = r.string(sy), sch != "HTTP" {
                r.fail(sy, "scheme \"\(sch)\" is not supported (minik probes speak HTTP)")
            }
            if let hy2 = hf["host"] { r.warn(hy2, "ignored: the probe connects to the pod's IP") }
            if let hy2 = hf["httpHeaders"] { r.warn(hy2, "ignored: minik sends no extra headers") }
            var path = r.string(hf["path"]) ?? "/"
            if !path.hasPrefix("/") { path = "/" + path }
            guard let p = port(hf["port"], in: hy) else { return nil }
            action = .httpGet(path: path, port: p)
        } else if let ty = f["tcpSocket"] {
            guard let tf = r.mapping(ty, "tcpSocket", known: ["port", "host"]) else { return nil }
            if let hy2 = tf["host"] { r.warn(hy2, "ignored: the probe connects to the pod's IP") }
            guard let p = port(tf["port"], in: ty) else { return nil }
            action = .tcpSocket(port: p)
        } else {
            r.fail(f["grpc"], "grpc probes are not supported (use exec, httpGet or tcpSocket)")
            return nil
        }
        var p = Probe(action: action)
        func seconds(_ key: String, min: Int) -> Double? {
            guard let v = r.int(f[key]) else { return nil }
            // int32 in the Kubernetes API; larger values would not survive Double and back.
            if v < min || v > Int(Int32.max) {
                r.fail(f[key], "\(key) must be \(min) or more, at most \(Int32.max)")
                return nil
            }
            return Double(v)
        }
        p.initialDelaySeconds = seconds("initialDelaySeconds", min: 0) ?? p.initialDelaySeconds
        p.periodSeconds = seconds("periodSeconds", min: 1) ?? p.periodSeconds
        p.timeoutSeconds = seconds("timeoutSeconds", min: 1) ?? p.timeoutSeconds
        p.successThreshold = seconds("successThreshold", min: 1).map(Int.init) ?? p.successThreshold
        p.failureThreshold = seconds("failureThreshold", min: 1).map(Int.init) ?? p.failureThreshold
        if liveness && p.successThreshold != 1 {
            r.fail(f["successThreshold"], "successThreshold of a livenessProbe must be 1")
        }
        return p
    }

    // MARK: addresses and cluster-wide checks

    /// Adds the documents' services to `out`: a re-applied service keeps its ClusterIP and
    /// node ports; new ones get what they ask for or an allocated one. Every address and
    /// port is checked against the subnets and the other services.
    func finishServices(into out: inout ClusterSpec) {
        var wanted: [RawService] = []
        // Indexed: a file of 10,000 services must not cost 10,000 x 10,000 comparisons.
        let existing = Dictionary(out.services.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        var replaced = Set<String>()
        for raw in services {
            var raw = raw
            if let old = existing[raw.spec.key] {
                if let ip = raw.spec.clusterIP, ip != old.clusterIP, old.clusterIP != nil {
                    r.fail(raw.clusterIPAt, "clusterIP cannot change (\(old.clusterIP!) to \(ip)): delete the service first")
                    continue
                }
                if raw.spec.headless != old.headless && raw.clusterIPAt != nil {
                    r.fail(raw.clusterIPAt, "a service cannot change between headless and not: delete it first")
                    continue
                }
                // clusterIP is immutable: left out, it keeps the running value (or None).
                if raw.clusterIPAt == nil && old.headless && raw.spec.type == .clusterIP { raw.spec.headless = true }
                if raw.spec.clusterIP == nil && !raw.spec.headless && raw.spec.type != .externalName { raw.spec.clusterIP = old.clusterIP }
                for i in raw.spec.ports.indices where raw.spec.ports[i].nodePort == nil && raw.spec.hasNodePorts {
                    let p = raw.spec.ports[i]
                    raw.spec.ports[i].nodePort = old.ports.first { $0.name == p.name && $0.proto == p.proto }?.nodePort
                }
                replaced.insert(raw.spec.key)
            }
            wanted.append(raw)
        }
        if !replaced.isEmpty { out.services.removeAll { replaced.contains($0.key) } }
        // Requested addresses first, so an allocation never takes one somebody asked for.
        var ips: [IPv4Address: String] = [:]
        var nodePorts: [String: String] = [:]
        for s in out.services {
            if let ip = s.clusterIP { ips[ip] = s.key }
            for p in s.ports { if let np = p.nodePort { nodePorts["\(np)/\(p.proto)"] = s.key } }
        }
        for raw in wanted {
            let s = raw.spec
            if let ip = s.clusterIP {
                if !out.serviceSubnet.contains(ip) {
                    r.fail(raw.clusterIPAt, "clusterIP \(ip) is outside the serviceSubnet \(out.serviceSubnet)")
                } else if let why = SpecLoader.reservedServiceIP(ip, in: out.serviceSubnet), raw.clusterIPAt != nil,
                          // The DNS address is kube-system/kube-dns's: minik's own, or the user's
                          // when minik's cluster DNS is off (with it on, that name is refused).
                          !(s.key == ClusterDNS.serviceKey && ip == SpecLoader.dnsServiceIP(out.serviceSubnet)) {
                    r.fail(raw.clusterIPAt, "clusterIP \(ip) cannot be used: \(why)")
                } else if let owner = ips[ip], owner != s.key {
                    r.fail(raw.clusterIPAt, "clusterIP \(ip) is already taken by service \(owner)")
                } else {
                    ips[ip] = s.key
                }
            }
            var own = Set<String>()
            for (i, p) in s.ports.enumerated() {
                guard let np = p.nodePort else { continue }
                if !own.insert("\(np)/\(p.proto)").inserted {
                    r.fail(raw.nodePortAt[i], "nodePort \(np)/\(p.proto) is given to two ports of this service")
                } else if let owner = nodePorts["\(np)/\(p.proto)"], owner != s.key {
                    r.fail(raw.nodePortAt[i], "nodePort \(np)/\(p.proto) is already taken by service \(owner)")
                } else {
                    nodePorts["\(np)/\(p.proto)"] = s.key
                }
            }
            for (ip, at) in zip(s.externalIPs, raw.externalIPsAt) {
                let ranges = [("podSubnet", out.podSubnet), ("serviceSubnet", out.serviceSubnet),
                              ("underlaySubnet", out.network.underlaySubnet), ("loopback range", try! IPv4CIDR.parse("127.0.0.0/8")),
                              ("multicast range", try! IPv4CIDR.parse("224.0.0.0/3")), ("this-network range", try! IPv4CIDR.parse("0.0.0.0/8"))]
                if let clash = ranges.first(where: { $0.1.contains(ip) }) {
                    r.fail(at, "externalIP \(ip) is inside the \(clash.0) \(clash.1); use an address outside the cluster's ranges, e.g. 192.0.2.10")
                }
            }
        }
        // Then allocations.
        let subnet = out.serviceSubnet
        for var raw in wanted {
            if raw.spec.clusterIP == nil && !raw.spec.headless && raw.spec.type != .externalName {
                guard let ip = allocateIP(for: raw.spec.key, in: subnet, taken: ips) else {
                    r.fail(raw.at, "serviceSubnet \(subnet) has no free address left for service \(raw.spec.key)")
                    continue
                }
                raw.spec.clusterIP = ip
                ips[ip] = raw.spec.key
            }
            for i in raw.spec.ports.indices where raw.spec.hasNodePorts && raw.spec.ports[i].nodePort == nil {
                let p = raw.spec.ports[i]
                guard let np = allocateNodePort(for: "\(raw.spec.key):\(p.name)/\(p.proto)", proto: p.proto, taken: nodePorts) else {
                    r.fail(raw.at, "no free node port left (30000-32767)")
                    continue
                }
                raw.spec.ports[i].nodePort = np
                nodePorts["\(np)/\(p.proto)"] = raw.spec.key
            }
            out.services.append(raw.spec)
            if let sel = raw.spec.selector, !sel.isEmpty, out.pods(selectedBy: raw.spec).isEmpty,
               !out.deployments.contains(where: { d in d.namespace == raw.spec.namespace && d.replicas > 0 && sel.allSatisfy { d.template.labels[$0.key] == $0.value } }) {
                let seen = Set(out.pods.filter { $0.namespace == raw.spec.namespace }.flatMap { $0.labels.map { "\($0.key)=\($0.value)" } }).sorted()
                r.warn(raw.at, "selector \(sel.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")) matches no pod in namespace \(raw.spec.namespace) yet (its pods have labels: \(seen.prefix(8).joined(separator: ", ").ifEmpty("none")))")
            }
        }
    }

    func allocateIP(for key: String, in subnet: IPv4CIDR, taken: [IPv4Address: String]) -> IPv4Address? {
        let size = subnet.size
        guard size > 4 else { return nil }
        var i = UInt64(SpecLoader.hash(key)) % size
        for _ in 0..<size {
            let ip = subnet.address(UInt32(i))
            if SpecLoader.reservedServiceIP(ip, in: subnet) == nil && taken[ip] == nil { return ip }
            i = (i + 1) % size
        }
        return nil
    }

    func allocateNodePort(for key: String, proto: String, taken: [String: String]) -> Int? {
        let range = ServiceSpec.nodePortRange
        var i = Int(SpecLoader.hash(key) % UInt32(range.count))
        for _ in 0..<range.count {
            let np = range.lowerBound + i
            if taken["\(np)/\(proto)"] == nil { return np }
            i = (i + 1) % range.count
        }
        return nil
    }
}

extension DNS {
    /// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
    public static func isSubdomain(_ s: String) -> Bool {
        s.utf8.count <= 253 && !s.isEmpty && s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isLabel(String($0)) }
    }
}

extension String {
    func ifEmpty(_ other: String) -> String { isEmpty ? other : self }
}
