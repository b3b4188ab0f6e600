// `minik trace`: a packet's path from the kernel's state, hop by hop, without sending it.
import ArgumentParser
import Foundation
import MinikRuntime
import MinikSpec
import MinikSupervisor

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
        if let port, TraceEndpoints.parsePort(port) == nil {
            throw ValidationError("--port \"\(port)\": give PORT or PORT/PROTOCOL (TCP, UDP, SCTP), e.g. 8080/TCP")
        }
        let name = try cluster.resolve()
        let report: Trace.Report
        // The supervisor has the state: it traces, and sends back only the report.
        let call = TraceCall(source: source, destination: destination, namespace: namespace, port: port, size: size, live: live)
        if let r = ControlSocket.call(path: Naming.socketPath(name), ControlRequest(op: .trace, trace: call), timeout: 60) {
            guard r.ok, let body = r.body, let decoded = try? JSONDecoder().decode(Trace.Report.self, from: Data(body.utf8)) else {
                throw CLIError(r.message ?? "the supervisor could not trace")
            }
            report = decoded
        } else {
            let (state, _) = try clusterState(name)
            do {
                report = try Trace.request(state, from: source, to: destination, namespace: namespace, port: port, size: size, live: live)
            } catch {
                throw CLIError("\(error)")
            }
        }
        let result = report.result, packet = report.packet, from = report.from, to = report.to, what = report.what
        if output == "json" {
            print(try report.json())
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
            } else if let r = result.replyFailure {
                print("result: delivered to \(result.hops.last?.place ?? to.label), but the reply does not come back: \(r)")
            } else if result.delivered {
                print("result: delivered to \(result.hops.last?.place ?? to.label)")
            }
        }
        for e in report.warnings { printErr("warning: \(e)") }
        // Not delivered, or the kernel did not do what the model says: exit 1.
        if !result.delivered || result.replyFailure != nil || result.live?.agrees == false { throw ExitCode(1) }
    }
}

