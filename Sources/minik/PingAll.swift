// `minik pingall`: every running pod pings every other one, from its own network
// namespace; the matrix is printed as Mininet prints its pingall, failures named.
import ArgumentParser
import Foundation
import MinikRuntime

struct PingAllCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pingall",
        abstract: "Ping every pod from every pod (ICMP from each pod's own namespace) and show who reaches whom, as Mininet's pingall."
    )

    @OptionGroup var cluster: ClusterOption
    @Option(name: .shortAndLong, help: "Only the pods of this namespace (default: all).") var namespace: String?
    @Option(help: "Seconds to wait for the replies.") var timeout: Double = 1
    @Option(name: .shortAndLong, help: "Output: matrix or json.") var output: String = "matrix"

    func run() throws {
        try requireRoot("minik pingall")
        guard output == "matrix" || output == "json" else { throw ValidationError("--output must be matrix or json") }
        guard timeout > 0, timeout <= 60 else { throw ValidationError("--timeout must be above 0 and at most 60 seconds") }
        let name = try cluster.resolve()
        let (state, _) = try clusterState(name)
        let pods = state.pods.filter {
            $0.phase == .running && $0.ip != nil && $0.deletionTimestamp == nil && (namespace == nil || $0.namespace == namespace)
                && Sandbox.isAlive($0.pid, startTime: $0.startTime)
        }.sorted { $0.key < $1.key }
        guard pods.count >= 2 else {
            throw CLIError("pingall needs two running pods\(namespace.map { " in namespace \($0)" } ?? ""); there \(pods.count == 1 ? "is 1" : "are \(pods.count)")")
        }
        let label = { (p: PodState) in p.namespace == "default" ? p.name : p.key }
        let endpoints = pods.map { PingAll.Endpoint(name: label($0), netns: $0.netns, ip: $0.ip!) }
        let result = PingAll.run(endpoints, timeout: timeout)
        let n = pods.count
        var received = 0, failures: [String] = []
        for i in 0..<n {
            for j in 0..<n where j != i {
                if result[i][j].ok { received += 1; continue }
                let why: String
                switch result[i][j] {
                case .error(let from, let reason): why = "\(reason) (from \(from))"
                case .failed(let text): why = text
                default: why = "no reply within \(timeout.formatted())s"
                }
                failures.append("\(endpoints[i].name) (\(pods[i].node)) -> \(endpoints[j].name) \(endpoints[j].ip) (\(pods[j].node)): \(why)")
            }
        }
        let total = n * (n - 1)
        let dropped = Int((Double(total - received) / Double(total) * 100).rounded())
        if output == "json" {
            let rows: [[String: Any]] = (0..<n).flatMap { i in
                (0..<n).filter { $0 != i }.map { j -> [String: Any] in
                    var row: [String: Any] = ["from": pods[i].key, "to": pods[j].key, "ok": result[i][j].ok]
                    switch result[i][j] {
                    case .reply(let ms): row["ms"] = (ms * 1000).rounded() / 1000
                    case .error(let from, let reason): row["error"] = reason; row["reporter"] = from.description
                    case .failed(let text): row["error"] = text
                    case .noReply: row["error"] = "no reply"
                    }
                    return row
                }
            }
            let doc: [String: Any] = ["pods": pods.map(\.key), "sent": total, "received": received, "results": rows]
            print(String(decoding: try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
        } else {
            print("*** Ping: testing ping reachability")
            for i in 0..<n {
                let row = (0..<n).filter { $0 != i }.map { result[i][$0].ok ? endpoints[$0].name : "X" }
                print("\(endpoints[i].name) -> \(row.joined(separator: " "))")
            }
            print("*** Results: \(dropped)% dropped (\(received)/\(total) received)")
            for f in failures { print("X \(f)") }
        }
        if received < total, let bench = try? faultBench(cluster), let faults = try? bench.list(), !faults.isEmpty {
            let names = Set(faults.compactMap { $0.fault?.description }).sorted()
            printErr("note: faults are in place (minik fault list): \(names.joined(separator: "; "))")
        }
        if received < total { throw ExitCode(1) }
    }
}
