// ICMP echo from inside a namespace to many addresses at once: how `up` knows every pod
// is reachable before it returns. One raw socket in the probing namespace, requests
// re-sent every 100 ms to the addresses that have not answered yet, until all answered
// or the deadline passed. Only addresses inside the cluster's own namespaces are probed.
import Foundation
import MinikSpec

public enum Reachability {
    /// Pings `targets` from namespace `from`; returns the ones that never answered.
    public static func unreachable(from ns: NetNamespace, targets: [IPv4Address], timeout: Double = 5) throws(RuntimeError) -> [IPv4Address] {
        if targets.isEmpty { return [] }
        let fd = try ns.socket(domain: AF_INET, type: Int32(SOCK_RAW.rawValue), protocol: Int32(IPPROTO_ICMP))
        defer { close(fd) }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let ident = UInt16(truncatingIfNeeded: getpid() ^ Int32(truncatingIfNeeded: targets.count))
        var pending = Set(targets)
        let deadline = Date().addingTimeInterval(timeout)
        var seq: UInt16 = 0
        var buf = [UInt8](repeating: 0, count: 2048)
        while !pending.isEmpty && Date() < deadline {
            seq &+= 1
            for t in pending { send(fd: fd, to: t, ident: ident, seq: seq) }
            let roundEnd = min(deadline, Date().addingTimeInterval(0.1))
            while !pending.isEmpty {
                let left = roundEnd.timeIntervalSinceNow
                if left <= 0 { break }
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&pfd, 1, Int32(left * 1000) + 1) <= 0 { continue }
                while true {
                    let n = recv(fd, &buf, buf.count, 0)
                    if n <= 0 { break }
                    if let from = parseReply(buf, count: n, ident: ident) { pending.remove(from) }
                }
            }
        }
        return targets.filter { pending.contains($0) }
    }

    static func send(fd: Int32, to target: IPv4Address, ident: UInt16, seq: UInt16) {
        let packet = PingAll.echoRequest(id: ident, sequence: seq)
        var addr = target.socketAddress(port: 0)
        _ = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, packet, packet.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    /// The source of an echo reply carrying our identifier, from a raw IPv4 packet.
    public static func parseReply(_ b: [UInt8], count n: Int, ident: UInt16) -> IPv4Address? {
        guard n >= 20 else { return nil }
        let ihl = Int(b[0] & 0x0f) * 4
        guard b[0] >> 4 == 4, n >= ihl + 8, b[ihl] == 0 else { return nil }
        let id = UInt16(b[ihl + 4]) << 8 | UInt16(b[ihl + 5])
        guard id == ident else { return nil }
        return IPv4Address(b[12], b[13], b[14], b[15])
    }

    /// The Internet checksum (RFC 1071).
    public static func checksum(_ data: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < data.count {
            sum += UInt32(data[i]) << 8 | UInt32(data[i + 1])
            i += 2
        }
        if i < data.count { sum += UInt32(data[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}
