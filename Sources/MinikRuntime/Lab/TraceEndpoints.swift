// The endpoints of a trace as a user names them (pod/NAME, NS/NAME, svc/NAME, node/NAME,
// external, IP[:PORT]) resolved against a cluster's state, for the CLI and the dashboard.
import MinikSpec

public enum TraceEndpoints {
    public struct Endpoint: Sendable, Codable {
        public var place: Trace.Place?
        public var ip: IPv4Address
        public var port: Int?
        public var proto: String?
        public var label: String
    }

    public struct Failure: Error, CustomStringConvertible, Sendable { public var description: String }

    /// "8080/TCP", "53/udp", "80": the port and the protocol (upper case).
    public static func parsePort(_ text: String) -> (Int, String)? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let n = Int(parts[0]), (1...65535).contains(n) else { return nil }
        let proto = parts.count == 2 ? parts[1].uppercased() : "TCP"
        guard ["TCP", "UDP", "SCTP"].contains(proto) else { return nil }
        return (n, proto)
    }

    public static func resolve(_ word: String, state: ClusterState, places: [Trace.Place], namespace: String, asSource: Bool) throws(Failure) -> Endpoint {
        if word == "external" || word == "external/host" {
            let p = places.first { $0.kind == .external }!
            return Endpoint(place: p, ip: p.ip!, label: "external")
        }
        if word.hasPrefix("node/") || state.nodes.contains(where: { $0.name == word }) {
            let n = word.hasPrefix("node/") ? String(word.dropFirst(5)) : word
            guard let p = places.first(where: { $0.kind == .node && $0.name == n }) else {
                throw Failure(description: "node \"\(n)\" not found (nodes: \(state.nodes.map(\.name).joined(separator: ", ")))")
            }
            return Endpoint(place: p, ip: p.ip!, label: "node/\(n)")
        }
        if word.hasPrefix("svc/") || word.hasPrefix("service/") {
            let rest = word.split(separator: "/").dropFirst().map(String.init)
            let (ns, name) = rest.count == 2 ? (rest[0], rest[1]) : (namespace, rest.joined(separator: "/"))
            guard let s = state.services.first(where: { $0.spec.namespace == ns && $0.spec.name == name }) else {
                throw Failure(description: "service \"\(name)\" not found in namespace \(ns)")
            }
            if asSource { throw Failure(description: "\(word): a service is a destination, not a source") }
            guard let ip = s.spec.clusterIP, !s.spec.headless else {
                throw Failure(description: "service \(ns)/\(name) has no cluster IP (headless): trace to one of its pods")
            }
            return Endpoint(place: nil, ip: ip, port: s.spec.ports.first?.port, proto: s.spec.ports.first?.proto, label: "svc/\(ns)/\(name)")
        }
        // An address, with a port.
        let hostPart = word.split(separator: ":").first.map(String.init) ?? word
        if let ip = IPv4Address(hostPart) {
            var port: Int?
            if word.contains(":") {
                guard let n = Int(word.split(separator: ":").last ?? ""), (1...65535).contains(n) else {
                    throw Failure(description: "\(word): the port after \":\" must be 1 to 65535")
                }
                port = n
            }
            let place = places.first { $0.ip == ip && $0.kind != .underlay }
            if asSource && place == nil { throw Failure(description: "\(word) is no pod's, node's or the external host's address") }
            return Endpoint(place: place, ip: ip, port: port, proto: port == nil ? nil : "TCP", label: place.map { "\($0.kind.rawValue)/\($0.name)" } ?? word)
        }
        var key = word.hasPrefix("pod/") ? String(word.dropFirst(4)) : word
        if !key.contains("/") { key = "\(namespace)/\(key)" }
        guard let p = places.first(where: { $0.kind == .pod && $0.name == key }) else {
            throw Failure(description: "\"\(word)\" is not a running pod with an address (\(key)), nor svc/NAME, node/NAME, external or an IP")
        }
        return Endpoint(place: p, ip: p.ip!, label: "pod/\(key)")
    }
}
