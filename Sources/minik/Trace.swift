// `minik trace`: a packet's path from the kernel's state, hop by hop, without sending it.
import ArgumentParser
import Foundation
import MinikRuntime
import MinikSpec

struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Follow a packet's path through the kernel's state (routes, neighbours, FDB, veths, netfilter, VXLAN), without sending it.",
        discussion: """
        Endpoints: pod/NAME, pod/NS/NAME (or NS/NAME, NAME), svc/NAME (its ClusterIP), node/NAME, external \
        (the host on the underlay that is not a node), or an address IP[:PORT] as the destination. \
        Examples: minik trace default/web-0 default/web-1 --port 8080/TCP; minik trace external 172.18.0.3:30080
        """
    )

    @OptionGroup var cluster: ClusterOption
    @Option(name: .shortAndLong, help: "Namespace of pods and services named without one.") var namespace: String = "default"
    @Option(name: .shortAndLong, help: "The destination port and protocol: 8080/TCP, 53/UDP, 80 (default: a service's first port; ICMP echo otherwise).")
    var port: String?
    @Option(help: "The packet's size in bytes (its IP length), checked against each MTU on the way.") var size: Int = 84
    @Flag(help: "Also send one real probe, follow it with the kernel's own trace (iptables TRACE, xtables-monitor) and compare the rules it hit with these.")
    var live = false
    @Option(name: .shortAndLong, help: "Output: text or json.") var output: String = "text"
    @Argument(help: "Where the packet starts.") var source: String
    @Argument(help: "Where it goes.") var destination: String

    func run() throws {
        try requireRoot("minik trace")
        guard output == "text" || output == "json" else { throw ValidationError("--output must be text or json") }
        guard (28...65535).contains(size) else { throw ValidationError("--size must be between 28 and 65535") }
        var wanted: (Int, String)?
        if let port {
            guard let parsed = TraceEndpoints.parsePort(port) else {
                throw ValidationError("--port \"\(port)\": give PORT or PORT/PROTOCOL (TCP, UDP, SCTP), e.g. 8080/TCP")
            }
            wanted = parsed
        }
        let name = try cluster.resolve()
        let (state, _) = try clusterState(name)
        let places = Trace.places(state)
        let from: TraceEndpoints.Endpoint, to: TraceEndpoints.Endpoint
        do {
            from = try TraceEndpoints.resolve(source, state: state, places: places, namespace: namespace, asSource: true)
            to = try TraceEndpoints.resolve(destination, state: state, places: places, namespace: namespace, asSource: false)
        } catch {
            throw CLIError(error.description)
        }
        guard let start = from.place else { throw CLIError("\(source): a trace starts in a pod, a node or external") }
        let (dport, proto) = wanted ?? to.port.map { ($0, to.proto ?? "TCP") } ?? (0, "ICMP")
        // A source port of its own, so that --live traces this probe only.
        let packet = Netfilter.Packet(source: from.ip, destination: to.ip, proto: proto.lowercased(), sourcePort: Int.random(in: 40_000...60_999),
                                      destinationPort: dport)
        let reader = Trace.Reader()
        var world = Trace.world(state, reader: reader)
        var result = Trace.run(world, from: start, packet: packet, size: size)
        if live {
            let nodes = places.filter { $0.kind == .node }
            let seen: (hits: [Trace.RuleHit], probe: String)
            do { seen = try Trace.live(from: start, packet: packet, nodes: nodes) } catch { throw CLIError("\(error)") }
            // Walk the model again along the kernel's own random picks, then compare.
            world.chosen = Set(seen.hits.compactMap { h in Netfilter.tokens(h.rule).split(separator: "-j").last?.first })
            result = Trace.run(world, from: start, packet: packet, size: size)
            let diff = Trace.compare(model: result.rules, kernel: seen.hits)
            result.live = Trace.Live(probe: seen.probe, hits: seen.hits, kernelOnly: diff.kernelOnly, modelOnly: diff.modelOnly)
        }
        let what = proto == "ICMP" ? "ICMP echo" : "\(dport)/\(proto)"
        if output == "json" {
            struct Doc: Encodable {
                var source: String, destination: String, packet: String
                var result: Trace.Result
            }
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let doc = Doc(source: "\(from.label) \(from.ip)", destination: "\(to.label) \(to.ip)", packet: what, result: result)
            print(String(decoding: try enc.encode(doc), as: UTF8.self))
        } else {
            print("trace \(from.label) (\(from.ip)) -> \(to.label) (\(to.ip)) \(what), \(size) bytes: from the kernel's state, no packet sent")
            var rows: [[String]] = [["", "WHERE", "INTERFACE", "OBJECT", "DECISION"]]
            for (i, h) in result.hops.enumerated() {
                rows.append(["\(i + 1)", h.place, h.interface, h.failed ? "\(h.object) FAILS" : h.object, h.detail])
            }
            printTable(rows)
            if let d = result.dnat { print("DNAT: \(d)") }
            for r in result.reply { print("reply: \(r)") }
            if let l = result.live {
                let places = Set(l.hits.map(\.place)).sorted()
                print("live: one probe from port \(packet.sourcePort) (\(l.probe)); the kernel traced \(l.hits.count) rules in \(places.isEmpty ? "no node" : places.joined(separator: ", "))"
                      + (l.agrees ? ": the same rules as above" : ""))
                for h in l.kernelOnly { print("live: the kernel matched, the model did not: \(h.place) \(h.table) \(h.rule)") }
                for h in l.modelOnly { print("live: the model matched, the kernel did not: \(h.place) \(h.table) \(h.rule)") }
            }
            if let f = result.failure {
                print("result: the packet does not arrive: \(f)")
            } else if result.delivered {
                print("result: delivered to \(result.hops.last?.place ?? to.label)")
            }
        }
        for e in reader.errors { printErr("warning: \(e)") }
        // Not delivered, or the kernel did not do what the model says: exit 1.
        if !result.delivered || result.live?.agrees == false { throw ExitCode(1) }
    }
}

enum TraceEndpoints {
    struct Endpoint {
        var place: Trace.Place?
        var ip: IPv4Address
        var port: Int?
        var proto: String?
        var label: String
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// "8080/TCP", "53/udp", "80": the port and the protocol (upper case).
    static func parsePort(_ text: String) -> (Int, String)? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let n = Int(parts[0]), (1...65535).contains(n) else { return nil }
        let proto = parts.count == 2 ? parts[1].uppercased() : "TCP"
        guard ["TCP", "UDP", "SCTP"].contains(proto) else { return nil }
        return (n, proto)
    }

    static func resolve(_ word: String, state: ClusterState, places: [Trace.Place], namespace: String, asSource: Bool) throws(Failure) -> Endpoint {
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
