// `minik graph`: the cluster drawn from its state and the kernel, as Graphviz DOT, SVG
// (through Graphviz's dot), Mermaid or JSON.
import ArgumentParser
import Foundation
import MinikNetlink
import MinikRuntime

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Draw the cluster: nodes, the underlay, bridges, veths, VXLAN tunnels, host-gw routes, pods, services and their endpoints."
    )

    @OptionGroup var cluster: ClusterOption
    @Option(name: .shortAndLong, help: "Output: dot, svg (Graphviz), mermaid or json.") var output: String = "dot"

    func run() throws {
        try requireRoot("minik graph")
        guard ["dot", "svg", "mermaid", "json"].contains(output) else { throw ValidationError("--output must be dot, svg, mermaid or json") }
        let name = try cluster.resolve()
        let (state, _) = try clusterState(name)
        let topology: Topology
        do { topology = try Topology.read(state) } catch { throw CLIError("\(error)") }
        switch output {
        case "mermaid": print(topology.mermaid(), terminator: "")
        case "json": print(try topology.json())
        case "svg":
            do { FileHandle.standardOutput.write(Data(try topology.svg())) } catch { throw CLIError("\(error)") }
        default: print(topology.dot(), terminator: "")
        }
    }
}
