// `minik trace --live`: one real probe, followed by the kernel's own trace. Every node
// gets a rule in its raw table (PREROUTING and OUTPUT) that marks the probe for tracing
// (`-j TRACE`, nftables' nftrace with iptables-nft), `xtables-monitor --trace` listens in
// each node, the probe leaves the source's namespace from a socket bound to a port of
// its own (so only it is traced), and the rules the kernel reports it matched are
// compared with the model's. The marking rules go away afterwards, whatever happens.
//
// The kernel's random endpoint pick is read from the trace, and the model is walked
// again along the same pick, so a difference is a real one.
import Foundation
import MinikSpec

extension Trace {
    public struct Live: Sendable, Equatable, Codable {
        /// What the probe got back: "connected", "connection refused", "no answer in 1 s".
        public var probe: String
        /// Every rule the kernel says the probe matched, per place, in order.
        public var hits: [RuleHit]
        /// Rules the kernel matched that the model did not, and the other way round.
        public var kernelOnly: [RuleHit]
        public var modelOnly: [RuleHit]
        public var agrees: Bool { kernelOnly.isEmpty && modelOnly.isEmpty }

        public init(probe: String, hits: [RuleHit], kernelOnly: [RuleHit], modelOnly: [RuleHit]) {
            self.probe = probe
            self.hits = hits
            self.kernelOnly = kernelOnly
            self.modelOnly = modelOnly
        }
    }

    /// One line of `xtables-monitor --trace` that says a rule matched.
    public struct MonitorHit: Sendable, Equatable {
        public var id: String
        public var table: String
        public var chain: String
        public var rule: String
    }

    /// The rule hits in `xtables-monitor --trace` output, for the first packet of the
    /// probe only (its first trace id; TCP: the SYN). The marking rule itself is left out.
    public static func parseMonitor(_ text: String, proto: String) -> [MonitorHit] {
        // Trace ids are reused between packets; the IP ID field is the packet's own and
        // survives routing, DNAT and encapsulation.
        var wanted: String?
        var inWanted = false
        var hits: [MonitorHit] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("PACKET:") {
                let ipID = line.split(separator: " ").first { $0.hasPrefix("ID=") }.map(String.init)
                let first = proto != "tcp" || (line.contains(" SYN") && !line.contains(" ACK"))
                if wanted == nil && first { wanted = ipID }
                inWanted = first && ipID != nil && ipID == wanted
                continue
            }
            guard inWanted, line.hasPrefix("TRACE:") else { continue }
            let words = line.split(separator: " ", maxSplits: 3).map(String.init)
            guard words.count == 4 else { continue }
            let rest = words[3]
            let parts = rest.prefix { $0 != " " }.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count >= 3, parts[2] == "rule", let a = rest.range(of: " -A ") else { continue }
            let rule = String(rest[a.lowerBound...]).trimmingCharacters(in: .whitespaces)
            if rule.contains("--comment \"minik trace --live\"") { continue }
            hits.append(MonitorHit(id: words[2], table: parts[0], chain: parts[1], rule: rule))
        }
        return hits
    }

    /// The marking rules for a probe: in the raw table, PREROUTING and OUTPUT.
    static func markingRules(proto: String, sourcePort: Int, source: IPv4Address) -> [String] {
        let match = proto == "icmp" ? "-s \(source)/32 -p icmp -m icmp --icmp-type 8" : "-p \(proto) -m \(proto) --sport \(sourcePort)"
        return ["PREROUTING", "OUTPUT"].map { "\($0) \(match) -m comment --comment \"minik trace --live\" -j TRACE" }
    }

    /// Sends the probe, with the nodes listening, and reads what the kernel traced.
    /// `nodes`: the nodes' places. Returns the hits per place and the probe's outcome.
    public static func live(from start: Place, packet: Netfilter.Packet, nodes: [Place]) throws(RuntimeError) -> (hits: [RuleHit], probe: String) {
        guard let restore = Command.which("iptables-restore"), let monitor = Command.which("xtables-monitor") else {
            throw .state("--live needs iptables-restore and xtables-monitor (the iptables package: make deps)")
        }
        let rules = markingRules(proto: packet.proto, sourcePort: packet.sourcePort, source: packet.source)
        // One iptables-restore per node adds both rules, one removes them.
        let insert = "*raw\n" + rules.map { "-I \($0)\n" }.joined() + "COMMIT\n"
        let delete = "*raw\n" + rules.map { "-D \($0)\n" }.joined() + "COMMIT\n"
        var marked: [NetNamespace] = []
        var monitors: [(Place, pid_t, Int32)] = []
        defer {
            for (_, pid, fd) in monitors { kill(pid, SIGTERM); close(fd); var st: Int32 = 0; waitpid(pid, &st, 0) }
            for ns in marked { _ = try? Command.run([restore, "-w", "--noflush"], joining: [ns.fd], input: delete, timeout: 10) }
        }
        for n in nodes {
            let ns = try NetNamespace.open(n.netns)
            let r = try Command.run([restore, "-w", "--noflush"], joining: [ns.fd], input: insert, timeout: 10)
            guard r.succeeded else { throw .state("iptables-restore of the trace's marking rules in \(n.label): \(r.output)") }
            marked.append(ns)
            var pipe: [Int32] = [-1, -1]
            guard Glibc.pipe(&pipe) == 0 else { throw .system("pipe", errno: errno) }
            _ = fcntl(pipe[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(pipe[1], F_SETFD, FD_CLOEXEC)
            let pid = Command.spawn([monitor, "--trace"], joining: [ns.fd], env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                                    stdout: pipe[1], stderr: pipe[1])
            close(pipe[1])
            if pid < 0 { close(pipe[0]); throw .system("start xtables-monitor in \(n.label)", errno: -pid) }
            monitors.append((n, pid, pipe[0]))
        }
        usleep(200_000)  // the monitors subscribe to the trace events
        let outcome = try probe(from: start, packet: packet)
        usleep(300_000)
        var hits: [RuleHit] = []
        for (place, pid, fd) in monitors {
            kill(pid, SIGTERM)
            var st: Int32 = 0
            waitpid(pid, &st, 0)
            defer { close(fd) }
            var data = [UInt8]()
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(fd, &buf, buf.count)
                if n <= 0 { break }
                data += buf[0..<n]
            }
            hits += parseMonitor(String(decoding: data, as: UTF8.self), proto: packet.proto).map {
                RuleHit(place: place.label, table: $0.table, chain: $0.chain, rule: $0.rule)
            }
        }
        monitors.removeAll()
        return (hits, outcome)
    }

    /// The probe: a TCP connection attempt (SYN) from the chosen port, a UDP datagram, or
    /// an ICMP echo, from inside the source's namespace.
    static func probe(from start: Place, packet: Netfilter.Packet) throws(RuntimeError) -> String {
        let ns = try NetNamespace.open(start.netns)
        switch packet.proto {
        case "icmp":
            let fd = try ns.socket(domain: AF_INET, type: Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), protocol: Int32(IPPROTO_ICMP))
            defer { close(fd) }
            let req = PingAll.echoRequest(id: UInt16(truncatingIfNeeded: packet.sourcePort), sequence: 1)
            var to = packet.destination.socketAddress(port: 0)
            _ = withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, req, req.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            return poll(&pfd, 1, 1000) > 0 ? "an ICMP answer came back" : "no ICMP answer in 1 s"
        default:
            let type = packet.proto == "udp" ? SOCK_DGRAM : SOCK_STREAM
            let fd = try ns.socket(domain: AF_INET, type: Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), protocol: 0)
            defer { close(fd) }
            var on: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
            var me = IPv4Address(0).socketAddress(port: packet.sourcePort)
            let bound = withUnsafePointer(to: &me) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if bound != 0 { throw .system("bind the probe to port \(packet.sourcePort) in \(start.label)", errno: errno) }
            var to = packet.destination.socketAddress(port: packet.destinationPort)
            if packet.proto == "udp" {
                let payload: [UInt8] = Array("minik trace --live\n".utf8)
                _ = withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                return "a UDP datagram sent"
            }
            _ = withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, 1000) > 0 else { return "no answer in 1 s" }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            return err == 0 ? "connected" : String(cString: strerror(err)).lowercased()
        }
    }

    /// What the kernel and the model disagree on (per place, as sets of rules).
    public static func compare(model: [RuleHit], kernel: [RuleHit]) -> (kernelOnly: [RuleHit], modelOnly: [RuleHit]) {
        let m = Set(model), k = Set(kernel)
        return (kernel.filter { !m.contains($0) }, model.filter { !k.contains($0) })
    }
}
