// `minik fault`: break the underlay on purpose (link down, partition, loss, rate), list
// what is broken, and clear it. The work is FaultBench's; this decodes and prints.
import ArgumentParser
import Foundation
import MinikRuntime

struct FaultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault",
        abstract: "Break a node's underlay link on purpose: down, partitioned, lossy or slow (without netem: link state, netfilter, tbf).",
        subcommands: [FaultLink.self, FaultPartition.self, FaultLoss.self, FaultRate.self, FaultClear.self, FaultList.self]
    )
}

/// The bench of the cluster named (or the only one up); faults need no supervisor.
func faultBench(_ option: ClusterOption) throws -> FaultBench {
    try requireRoot("minik fault")
    let name = try option.resolve()
    do {
        let state = try ClusterState.load(cluster: name)
        return try FaultBench(cluster: name, nodes: state.nodes.map {
            FaultBench.Node(name: $0.name, index: $0.index, netns: $0.netns, internalIP: $0.internalIP)
        })
    } catch {
        throw CLIError("\(error)")
    }
}

func runFault<T>(_ body: () throws(RuntimeError) -> T) throws -> T {
    do { return try body() } catch { throw CLIError("\(error)") }
}

struct FaultLink: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "link", abstract: "Set a node's underlay link down (its cable pulled) or up again.")
    @OptionGroup var cluster: ClusterOption
    @Argument(help: "The node.") var node: String
    @Argument(help: "down or up.") var state: String

    func run() throws {
        guard state == "down" || state == "up" else { throw ValidationError("the link's state must be down or up, not \"\(state)\"") }
        let bench = try faultBench(cluster)
        try runFault { () throws(RuntimeError) in
            if state == "down" { try bench.apply(.linkDown(node: node)) } else { try bench.linkUp(node) }
        }
        print("node \(node): underlay link \(state)")
    }
}

struct FaultPartition: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "partition", abstract: "Drop all underlay traffic between two nodes, both ways.")
    @OptionGroup var cluster: ClusterOption
    @Argument(help: "One node.") var a: String
    @Argument(help: "The other node.") var b: String

    func run() throws {
        guard a != b else { throw ValidationError("a partition needs two different nodes") }
        let bench = try faultBench(cluster)
        try runFault { () throws(RuntimeError) in try bench.apply(.partitionOf(a, b)) }
        print("partition \(a) <-> \(b): underlay traffic between them is dropped")
    }
}

struct FaultLoss: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "loss", abstract: "Drop a share of the packets a node sends and receives on its underlay link, at random.")
    @OptionGroup var cluster: ClusterOption
    @Argument(help: "The node.") var node: String
    @Argument(help: "The share, e.g. 20% (more than 0, at most 100).") var percent: String

    func run() throws {
        guard let p = FaultRules.parsePercent(percent) else {
            throw ValidationError("loss \"\(percent)\": give a share above 0% and at most 100%, e.g. 20%")
        }
        let bench = try faultBench(cluster)
        try runFault { () throws(RuntimeError) in try bench.apply(.loss(node: node, percent: p)) }
        print("node \(node): \(FaultRules.percentText(p)) of its underlay packets dropped each way")
    }
}

struct FaultRate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rate", abstract: "Limit a node's underlay link to a rate each way (a token bucket filter).")
    @OptionGroup var cluster: ClusterOption
    @Argument(help: "The node.") var node: String
    @Argument(help: "The rate, as tc writes it: 10mbit, 512kbit, 1gbit, 2mbps (bytes).") var rate: String

    func run() throws {
        guard let bits = FaultRules.parseRate(rate) else {
            throw ValidationError("rate \"\(rate)\": give a number and a unit (bit, kbit, mbit, gbit; bps, kbps, mbps, gbps for bytes), e.g. 10mbit")
        }
        let bench = try faultBench(cluster)
        try runFault { () throws(RuntimeError) in try bench.apply(.rate(node: node, bitsPerSecond: bits)) }
        print("node \(node): underlay link limited to \(FaultRules.rateText(bits)) each way")
    }
}

struct FaultClear: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clear", abstract: "Remove every fault of these nodes (all nodes when none is named).")
    @OptionGroup var cluster: ClusterOption
    @Argument(help: "The nodes.") var nodes: [String] = []

    func run() throws {
        let bench = try faultBench(cluster)
        let all = nodes.isEmpty ? try runFault { () throws(RuntimeError) in try bench.list() }.map(\.node) : nodes
        let names = nodes.isEmpty ? Array(Set(all)).sorted() : nodes
        let removed = try runFault { () throws(RuntimeError) in try bench.clear(names) }
        if removed.isEmpty { print("no faults") }
        for f in removed { print("cleared: \(f)") }
    }
}

struct FaultList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Show the faults in place, read from the kernel, with what each has done.")
    @OptionGroup var cluster: ClusterOption
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: String = "table"

    func run() throws {
        guard output == "table" || output == "json" else { throw ValidationError("--output must be table or json") }
        let bench = try faultBench(cluster)
        let active = try runFault { () throws(RuntimeError) in try bench.list() }
        if output == "json" {
            let rows: [[String: String]] = active.map { ["node": $0.node, "fault": $0.kind, "spec": $0.fault?.description ?? "", "detail": $0.detail] }
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        if active.isEmpty { print("no faults"); return }
        printTable([["NODE", "FAULT", "DETAIL"]] + active.map { [$0.node, $0.kind, $0.detail] })
    }
}
