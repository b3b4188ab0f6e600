// pingall: every pod pings every other pod, as Mininet's pingall does for its hosts.
//
// One raw ICMP socket is opened inside each pod's network namespace (on a throwaway
// thread; the socket stays there), so the echo requests leave from the pod's own eth0
// with its own address, through everything a pod's packet crosses, and no process runs
// in the pod. All requests go out at once; the ones unanswered are sent again twice
// within the timeout (an ARP resolution or a lossy link may eat the first). A reply is
// matched by the ICMP id (one per source) and the sequence number (the destination's
// index); an ICMP error names the hop that sent it and why.
import Foundation
import MinikSpec

public enum PingAll {
    public struct Endpoint: Sendable {
        public var name: String
        public var netns: String
        public var ip: IPv4Address

        public init(name: String, netns: String, ip: IPv4Address) {
            self.name = name
            self.netns = netns
            self.ip = ip
        }
    }

    public enum Outcome: Sendable, Equatable {
        case reply(milliseconds: Double)
        /// An ICMP error: who sent it and what it says.
        case error(from: IPv4Address, reason: String)
        case noReply
        /// The source could not send (its namespace is gone, no route...).
        case failed(String)

        public var ok: Bool { if case .reply = self { return true } else { return false } }
    }

    /// outcomes[i][j]: from endpoints[i] to endpoints[j] (the diagonal is a reply of 0).
    public static func run(_ endpoints: [Endpoint], timeout: Double = 1.0) -> [[Outcome]] {
        let n = endpoints.count
        var outcomes = [[Outcome]](repeating: [Outcome](repeating: .noReply, count: n), count: n)
        var pending = Set<Int>()  // i * n + j
        for i in 0..<n { outcomes[i][i] = .reply(milliseconds: 0) }
        var sockets = [Int32](repeating: -1, count: n)
        defer { for fd in sockets where fd >= 0 { close(fd) } }
        let idBase = UInt16.random(in: 0...UInt16.max)
        for i in 0..<n {
            do {
                let ns = try NetNamespace.open(endpoints[i].netns)
                sockets[i] = try ns.socket(domain: AF_INET, type: Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                                           protocol: Int32(IPPROTO_ICMP))
                for j in 0..<n where j != i { pending.insert(i * n + j) }
            } catch {
                for j in 0..<n where j != i { outcomes[i][j] = .failed("\(error)") }
            }
        }
        var sentAt = [Double](repeating: 0, count: n * n)
        let start = now()
        let resend = timeout / 3
        var round = 0
        var buffer = [UInt8](repeating: 0, count: 2048)
        while !pending.isEmpty {
            let elapsed = now() - start
            if elapsed >= timeout { break }
            if elapsed >= Double(round) * resend {
                for key in pending.sorted() {
                    let i = key / n, j = key % n
                    let packet = echoRequest(id: idBase &+ UInt16(truncatingIfNeeded: i), sequence: UInt16(truncatingIfNeeded: j))
                    var to = endpoints[j].ip.socketAddress(port: 0)
                    let sent = packet.withUnsafeBytes { p in
                        withUnsafePointer(to: &to) {
                            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                                sendto(sockets[i], p.baseAddress, p.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                            }
                        }
                    }
                    if sent < 0 && errno != EAGAIN && errno != ENOBUFS {
                        outcomes[i][j] = .failed("sendto \(endpoints[j].ip): \(String(cString: strerror(errno)))")
                        pending.remove(key)
                    } else if round == 0 {
                        sentAt[key] = now()
                    }
                }
                round += 1
            }
            // Wait for replies until the next round (or the end).
            let wait = min(Double(round) * resend, timeout) - (now() - start)
            var fds = sockets.enumerated().filter { $0.element >= 0 }.map { pollfd(fd: $0.element, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(max(wait, 0.001) * 1000))
            if ready <= 0 { continue }
            for pfd in fds where pfd.revents & Int16(POLLIN) != 0 {
                guard let i = sockets.firstIndex(of: pfd.fd) else { continue }
                while true {
                    var from = sockaddr_in()
                    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                    let got = buffer.withUnsafeMutableBytes { b in
                        withUnsafeMutablePointer(to: &from) {
                            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(pfd.fd, b.baseAddress, b.count, 0, $0, &len) }
                        }
                    }
                    if got <= 0 { break }
                    guard let (j, outcome) = parse(Array(buffer[0..<got]), id: idBase &+ UInt16(truncatingIfNeeded: i), count: n) else { continue }
                    let key = i * n + j
                    guard pending.contains(key) else { continue }
                    if case .reply = outcome {
                        outcomes[i][j] = .reply(milliseconds: (now() - sentAt[key]) * 1000)
                        pending.remove(key)
                    } else {
                        // An error may be answered later by a retry; keep it unless one is.
                        outcomes[i][j] = outcome
                    }
                }
            }
        }
        return outcomes
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// An ICMP echo request (type 8) with a 56-byte payload, as ping sends by default.
    public static func echoRequest(id: UInt16, sequence: UInt16) -> [UInt8] {
        var p: [UInt8] = [8, 0, 0, 0, UInt8(id >> 8), UInt8(id & 0xff), UInt8(sequence >> 8), UInt8(sequence & 0xff)]
        p += (0..<56).map { UInt8(truncatingIfNeeded: $0 &+ 0x10) }
        let sum = Reachability.checksum(p)
        p[2] = UInt8(sum >> 8)
        p[3] = UInt8(sum & 0xff)
        return p
    }

    /// What a received IPv4 packet (as a raw socket gives it) says about request (id, seq):
    /// the destination index and the outcome, or nil when it is not about ours.
    public static func parse(_ packet: [UInt8], id: UInt16, count: Int) -> (Int, Outcome)? {
        guard packet.count >= 20, packet[0] >> 4 == 4, packet[9] == 1 else { return nil }
        let ihl = Int(packet[0] & 0x0f) * 4
        guard packet.count >= ihl + 8 else { return nil }
        let icmp = packet[ihl...]
        let type = icmp[ihl], code = icmp[ihl + 1]
        let source = IPv4Address(UInt32(packet[12]) << 24 | UInt32(packet[13]) << 16 | UInt32(packet[14]) << 8 | UInt32(packet[15]))
        func echoFields(_ b: ArraySlice<UInt8>) -> (UInt16, Int) {
            let s = b.startIndex
            return (UInt16(b[s + 4]) << 8 | UInt16(b[s + 5]), Int(UInt16(b[s + 6]) << 8 | UInt16(b[s + 7])))
        }
        switch type {
        case 0:
            let (rid, seq) = echoFields(icmp)
            guard rid == id, seq < count else { return nil }
            return (seq, .reply(milliseconds: 0))
        case 3, 11, 12:
            // The error quotes our request: its IP header, then 8 bytes of its ICMP header.
            let inner = icmp.dropFirst(8)
            guard inner.count >= 20, inner[inner.startIndex] >> 4 == 4 else { return nil }
            let innerIHL = Int(inner[inner.startIndex] & 0x0f) * 4
            guard inner.count >= innerIHL + 8, inner[inner.startIndex + 9] == 1 else { return nil }
            let quoted = inner.dropFirst(innerIHL)
            guard quoted[quoted.startIndex] == 8 else { return nil }
            let (rid, seq) = echoFields(quoted)
            guard rid == id, seq < count else { return nil }
            return (seq, .error(from: source, reason: errorText(type: type, code: code)))
        default:
            return nil
        }
    }

    /// ping's words for an ICMP error.
    public static func errorText(type: UInt8, code: UInt8) -> String {
        switch (type, code) {
        case (3, 0): return "Destination Net Unreachable"
        case (3, 1): return "Destination Host Unreachable"
        case (3, 2): return "Destination Protocol Unreachable"
        case (3, 3): return "Destination Port Unreachable"
        case (3, 4): return "Frag needed and DF set"
        case (3, 9), (3, 10), (3, 13): return "Packet filtered (communication administratively prohibited)"
        case (3, _): return "Destination Unreachable, code \(code)"
        case (11, 0): return "Time to live exceeded"
        case (11, _): return "Frag reassembly time exceeded"
        default: return "Parameter problem"
        }
    }
}
