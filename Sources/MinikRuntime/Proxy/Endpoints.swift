// The endpoints controller: which pods a service sends traffic to. A pod is an endpoint
// of a service when the selector picks it, it runs and has an IP; it is ready when every
// app container runs and passes its readiness probe. A targetPort given by name is looked
// up in each pod; a pod that declares no such port is listed as not ready, with why.
// Pure: the cluster's spec and pod states in, endpoints and the proxy's input out.
import Foundation
import MinikSpec

public struct Endpoint: Codable, Sendable, Equatable {
    public var portName: String
    public var proto: String
    public var ip: IPv4Address
    /// The pod's port for this service port; nil when a named targetPort is not declared
    /// (and for the port-less endpoints of a headless service without ports).
    public var port: Int?
    public var pod: String
    public var node: String
    public var ready: Bool
    /// Why it is not ready.
    public var reason: String?

    public var address: String { port.map { "\(ip):\($0)" } ?? ip.description }
}

public struct ServiceState: Codable, Sendable, Equatable {
    public var spec: ServiceSpec
    public var endpoints: [Endpoint]
    public var createdAt: Date

    public var key: String { spec.key }
    /// What traffic goes to: ready endpoints with a port (or not-ready ones as well when
    /// publishNotReadyAddresses).
    public func serving(_ port: ServicePort) -> [Endpoint] {
        endpoints.filter { $0.portName == port.name && $0.proto == port.proto && $0.port != nil && isPublished($0) }
    }

    /// Listed as an address (not a notReadyAddress): ready, or publishNotReadyAddresses.
    public func isPublished(_ e: Endpoint) -> Bool { e.ready || spec.publishNotReadyAddresses }
}

public enum EndpointsController {
    /// Endpoints of every service in `spec`, from the pods' states.
    /// The pods of a spec by namespace and label ("ns\0key=value" -> indices in
    /// spec.pods): a service's selector is looked up, not matched against every pod.
    public struct SelectorIndex: Sendable {
        var byLabel: [String: [Int]] = [:]

        public init(_ pods: [PodSpec]) {
            for (i, p) in pods.enumerated() {
                for (k, v) in p.labels { byLabel["\(p.namespace)\u{0}\(k)=\(v)", default: []].append(i) }
            }
        }

        /// The indices of the pods `s` selects, in spec order (ClusterSpec.pods(selectedBy:)).
        public func selected(by s: ServiceSpec, in pods: [PodSpec]) -> [Int] {
            guard let sel = s.selector, !sel.isEmpty else { return [] }
            let lists = sel.map { byLabel["\(s.namespace)\u{0}\($0.key)=\($0.value)"] ?? [] }
            guard let shortest = lists.min(by: { $0.count < $1.count }), !shortest.isEmpty else { return [] }
            return shortest.filter { i in sel.allSatisfy { pods[i].labels[$0.key] == $0.value } }
        }
    }

    public static func endpoints(of s: ServiceSpec, spec: ClusterSpec, pods: [String: PodState], index: SelectorIndex? = nil) -> [Endpoint] {
        guard s.type != .externalName else { return [] }
        var out: [Endpoint] = []
        if s.selector == nil {
            let node = spec.nodes.first { $0.role == .controlPlane }?.name ?? ""
            for ip in s.fixedEndpoints {
                for sp in s.ports {
                    out.append(Endpoint(portName: sp.name, proto: sp.proto, ip: ip, port: { if case .number(let n) = sp.targetPort { return n }; return nil }(), pod: "", node: node, ready: true, reason: nil))
                }
            }
            return out
        }
        for i in (index ?? SelectorIndex(spec.pods)).selected(by: s, in: spec.pods) {
            let p = spec.pods[i]
            guard let st = pods[p.key], st.phase == .running, let ip = st.ip else { continue }
            let ready = st.isReady
            let why = ready ? nil : st.notReadyReason
            if s.ports.isEmpty {
                out.append(Endpoint(portName: "", proto: "TCP", ip: ip, port: nil, pod: p.key, node: st.node, ready: ready, reason: why))
            }
            for sp in s.ports {
                if let port = sp.targetPort.resolve(in: p, proto: sp.proto) {
                    out.append(Endpoint(portName: sp.name, proto: sp.proto, ip: ip, port: port, pod: p.key, node: st.node, ready: ready, reason: why))
                } else {
                    out.append(Endpoint(portName: sp.name, proto: sp.proto, ip: ip, port: nil, pod: p.key, node: st.node, ready: false,
                                        reason: "no container of pod \(p.name) declares a \(sp.proto) port named \"\(sp.targetPort)\""))
                }
            }
        }
        return out
    }

    /// What the proxy programs: one entry per port of every service with a ClusterIP.
    public static func proxyPorts(_ services: [ServiceState]) -> [ProxyServicePort] {
        var out: [ProxyServicePort] = []
        for st in services where st.spec.isProxied {
            let s = st.spec
            for sp in s.ports {
                // An address that is no pod's (a selectorless service's) is local to no node.
                let eps = st.serving(sp).map { ProxyServicePort.Endpoint(ip: $0.ip, port: $0.port!, node: $0.pod.isEmpty ? "" : $0.node) }
                out.append(ProxyServicePort(namespace: s.namespace, service: s.name, portName: sp.name, proto: sp.proto,
                                            clusterIP: s.clusterIP!, port: sp.port, nodePort: sp.nodePort,
                                            externalIPs: s.externalIPs, affinitySeconds: s.clientIPAffinity ? s.affinityTimeoutSeconds : nil,
                                            endpoints: Array(Set(eps)).sorted(),
                                            externalLocal: s.externalLocal, internalLocal: s.internalLocal))
            }
        }
        return out
    }
}
