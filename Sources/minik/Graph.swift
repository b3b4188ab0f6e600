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
            guard let dot = resolveExecutable("dot") else {
                throw CLIError("-o svg needs Graphviz's dot (install the graphviz package: make deps); -o dot prints its input")
            }
            let r = try runFiltered(dot, ["-Tsvg"], input: topology.dot())
            guard r.code == 0 else { throw CLIError("dot -Tsvg failed: \(r.err)") }
            FileHandle.standardOutput.write(r.out)
        default: print(topology.dot(), terminator: "")
        }
    }
}

/// Runs a host program with `input` on its stdin; its output and errors.
func runFiltered(_ path: String, _ args: [String], input: String) throws -> (code: Int32, out: Data, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
    p.standardInput = stdin
    p.standardOutput = stdout
    p.standardError = stderr
    try p.run()
    let writer = Thread { stdin.fileHandleForWriting.write(Data(input.utf8)); try? stdin.fileHandleForWriting.close() }
    writer.start()
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    // What it says on stderr is short (a message), read once it is done.
    return (p.terminationStatus, out, String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
}
