// A trace as asked for by a user (the CLI, the dashboard): endpoints by name, a port,
// a size, and --live; the model's walk, the probe and the comparison; the report.
import Foundation
import MinikSpec

extension Trace {
    public struct Report: Sendable, Codable {
        public var from: TraceEndpoints.Endpoint
        public var to: TraceEndpoints.Endpoint
        public var packet: Netfilter.Packet
        /// "8080/TCP" or "ICMP echo".
        public var what: String
        public var result: Result
        /// Namespaces that could not be read.
        public var warnings: [String]

        struct Doc: Encodable {
            var source: String, destination: String, packet: String
            var result: Result
        }

        /// As `trace -o json` prints it (and the dashboard reads it).
        public func json() throws -> String {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let doc = Doc(source: "\(from.label) \(from.ip)", destination: "\(to.label) \(to.ip)", packet: what, result: result)
            return String(decoding: try enc.encode(doc), as: UTF8.self)
        }
    }

    public struct RequestError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public static func request(_ state: ClusterState, from source: String, to destination: String, namespace: String = "default",
                               port: String? = nil, size: Int = 84, live: Bool = false) throws(RequestError) -> Report {
        var wanted: (Int, String)?
        if let port {
            guard let parsed = TraceEndpoints.parsePort(port) else {
                throw RequestError(description: "port \"\(port)\": give PORT or PORT/PROTOCOL (TCP, UDP, SCTP), e.g. 8080/TCP")
            }
            wanted = parsed
        }
        guard (28...65535).contains(size) else { throw RequestError(description: "size \(size): between 28 and 65535 bytes") }
        let places = Trace.places(state)
        let from: TraceEndpoints.Endpoint, to: TraceEndpoints.Endpoint
        do {
            from = try TraceEndpoints.resolve(source, state: state, places: places, namespace: namespace, asSource: true)
            to = try TraceEndpoints.resolve(destination, state: state, places: places, namespace: namespace, asSource: false)
        } catch {
            throw RequestError(description: error.description)
        }
        guard let start = from.place else { throw RequestError(description: "\(source): a trace starts in a pod, a node or external") }
        let (dport, proto) = wanted ?? to.port.map { ($0, to.proto ?? "TCP") } ?? (0, "ICMP")
        // A source port of its own, so that --live traces this probe only.
        let packet = Netfilter.Packet(source: from.ip, destination: to.ip, proto: proto.lowercased(), sourcePort: Int.random(in: 40_000...60_999),
                                      destinationPort: dport)
        let reader = Reader()
        // The ends and their nodes, read at once; the rest as the walk reaches it.
        let ends = [start, to.place].compactMap { $0 }
        let hosts = ends.compactMap { e in e.node.flatMap { n in places.first { $0.kind == .node && $0.name == n } } }
        reader.prefetch(ends + hosts)
        var world = Trace.world(state, reader: reader)
        var result = Trace.run(world, from: start, packet: packet, size: size)
        if live {
            let seen: (hits: [RuleHit], probe: String)
            do { seen = try Trace.live(from: start, packet: packet, nodes: places.filter { $0.kind == .node }) } catch {
                throw RequestError(description: "\(error)")
            }
            // Walk the model again along the kernel's own random picks, then compare.
            world.chosen = Set(seen.hits.compactMap { h in Netfilter.tokens(h.rule).split(separator: "-j").last?.first })
            result = Trace.run(world, from: start, packet: packet, size: size)
            let diff = Trace.compare(model: result.rules, kernel: seen.hits)
            result.live = Live(probe: seen.probe, hits: seen.hits, kernelOnly: diff.kernelOnly, modelOnly: diff.modelOnly)
        }
        return Report(from: from, to: to, packet: packet, what: proto == "ICMP" ? "ICMP echo" : "\(dport)/\(proto)",
                      result: result, warnings: reader.errors)
    }
}
