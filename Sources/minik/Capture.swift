// `minik capture`: several nodes' and pods' interfaces into one pcapng stream, to a file,
// to a pipe (wireshark -k -i -, tshark -r -), or on a terminal through tshark.
import ArgumentParser
import Foundation
import MinikNetlink
import MinikRuntime

struct CaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Capture packets on nodes', pods' and the underlay's interfaces into one pcapng stream (nothing runs inside the nodes).",
        discussion: """
        Targets: NODE [IFACE...] (no IFACE: all of the node's), pod/NAME or pod/NS/NAME (its eth0), \
        underlay [PORT...], external. Example: minik capture lab-worker eth0 lab-worker2 flannel.1 -w out.pcapng. \
        Flannel's VXLAN is on UDP 8472: tshark -d udp.port==8472,vxlan.
        """
    )

    @OptionGroup var cluster: ClusterOption
    @Option(name: .shortAndLong, help: "Namespace of pods named as pod/NAME.") var namespace: String = "default"
    @Option(name: [.customShort("w"), .long], help: "Write to this file (- for standard output).") var write: String?
    @Option(name: .shortAndLong, help: "A capture filter in libpcap's syntax (as tcpdump's), e.g. 'icmp or udp port 8472'.") var filter: String?
    @Option(name: .shortAndLong, help: "Stop after this many packets.") var count: Int?
    @Option(name: .shortAndLong, help: "Bytes kept of each packet.") var snaplen: Int = 262_144
    @Argument(help: "What to capture on.") var targets: [String]

    func run() throws {
        try requireRoot("minik capture")
        if let count, count <= 0 { throw ValidationError("--count must be at least 1") }
        guard (64...262_144).contains(snaplen) else { throw ValidationError("--snaplen must be between 64 and 262144") }
        if let filter, let problem = Capture.checkFilter(filter, snaplen: snaplen) {
            throw ValidationError("--filter \"\(filter)\": \(problem)")
        }
        let name = try cluster.resolve()
        let (state, _) = try clusterState(name)
        let view = CaptureTargets.Cluster(
            name: name, nodes: state.nodes.map { ($0.name, $0.netns) },
            pods: state.pods.filter { $0.phase == .running }.map { ($0.namespace, $0.name, $0.netns) })
        let interfaces: [Capture.Interface]
        do {
            var names: [String: [String]] = [:]  // one dump per namespace
            interfaces = try CaptureTargets.resolve(targets, namespace: namespace, cluster: view) { netns in
                if let known = names[netns] { return known }
                let found = (try? NetNamespace.open(netns)).flatMap { try? KernelView.read(namespaceFD: $0.fd) }?.links.map(\.name) ?? []
                names[netns] = found
                return found
            }
        } catch {
            throw CLIError(error.description)
        }

        // Where the stream goes: a file, standard output, or tshark on this terminal.
        var output: Int32 = 1
        var reader: Process?
        var readerInput: FileHandle?
        if let write, write != "-" {
            output = open(write, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if output < 0 { throw CLIError("cannot write \(write): \(String(cString: strerror(errno)))") }
        } else if write == nil && isatty(1) != 0 {
            guard let tshark = resolveExecutable("tshark") else {
                throw CLIError("the capture is pcapng, not text: write it with -w FILE, pipe it into `wireshark -k -i -` or `tshark -r -`, or install tshark (make deps) to read it here")
            }
            let pipe = Pipe()
            let p = Process()
            p.executableURL = URL(fileURLWithPath: tshark)
            p.arguments = ["-l", "-n", "-r", "-", "-d", "udp.port==8472,vxlan", "-T", "fields", "-E", "separator= ",
                           "-e", "frame.interface_name", "-e", "frame.time_relative", "-e", "_ws.col.Source",
                           "-e", "_ws.col.Destination", "-e", "_ws.col.Protocol", "-e", "_ws.col.Info"]
            p.standardInput = pipe
            // tshark's warning about running as root says nothing here; its other words pass.
            let errors = Pipe()
            p.standardError = errors
            errors.fileHandleForReading.readabilityHandler = { h in
                let text = String(decoding: h.availableData, as: UTF8.self)
                let kept = text.split(separator: "\n", omittingEmptySubsequences: false)
                    .filter { !$0.hasPrefix("Running as user \"root\"") }.joined(separator: "\n")
                if !kept.isEmpty { FileHandle.standardError.write(Data(kept.utf8)) }
            }
            try p.run()
            reader = p
            readerInput = pipe.fileHandleForWriting
            output = pipe.fileHandleForWriting.fileDescriptor
        }
        signal(SIGPIPE, SIG_IGN)
        let capture = Capture(interfaces: interfaces, filter: filter, snaplen: snaplen, count: count, output: output)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { capture.stop() }
            s.resume()
            sources.append(s)
        }
        let stats: Capture.Stats
        do {
            stats = try capture.run {
                printErr("capturing on \(interfaces.map(\.label).joined(separator: ", "))\(filter.map { " (filter: \($0))" } ?? "")")
            }
        } catch {
            throw CLIError("\(error)")
        }
        if let readerInput {
            try? readerInput.close()
            reader?.waitUntilExit()
        } else if output != 1 {
            close(output)
        }
        printErr("\(stats.captured) packets captured\n\(stats.droppedByKernel) packets dropped by kernel")
    }
}
