// Faults a lab breaks on purpose, and how the kernel holds them. Pure: the rules and
// the settings are rendered and read back here; FaultBench applies them.
//
// This kernel has no netem, so each fault is made of what it does have:
// - link down: the node's port on the underlay bridge is set down, as if its cable were
//   pulled; eth0 in the node loses its carrier and keeps its routes.
// - partition A B: netfilter drops between the two nodes' underlay addresses, in both
//   nodes (mangle table, chains MINIK-FAULTS-IN and MINIK-FAULTS-OUT, entered from
//   PREROUTING -i eth0 and POSTROUTING -o eth0). VXLAN and host-gw traffic both cross
//   eth0; ARP is not IP and still passes, as through a real firewall.
// - loss P%: the `statistic` match drops P% of the packets that enter and of those that
//   leave the node on eth0 (so a round trip survives with (1-P)^2).
// - rate R: a token bucket filter (tbf) on the node's eth0 and on its underlay port, so
//   each direction is shaped to R.
// Every rule carries the comment "minik fault: ..." that names its fault: `fault list`
// reads the faults back from the kernel, so what it shows is what is there.
import Foundation
import MinikSpec

public enum Fault: Equatable, Hashable, Sendable, CustomStringConvertible {
    case linkDown(node: String)
    /// Two different nodes, in name order.
    case partition(String, String)
    case loss(node: String, percent: Double)
    case rate(node: String, bitsPerSecond: UInt64)

    public static func partitionOf(_ a: String, _ b: String) -> Fault { a < b ? .partition(a, b) : .partition(b, a) }

    public var nodes: [String] {
        switch self {
        case .linkDown(let n), .loss(let n, _), .rate(let n, _): return [n]
        case .partition(let a, let b): return [a, b]
        }
    }

    public var kind: String {
        switch self {
        case .linkDown: return "link"
        case .partition: return "partition"
        case .loss: return "loss"
        case .rate: return "rate"
        }
    }

    public var description: String {
        switch self {
        case .linkDown(let n): return "link \(n) down"
        case .partition(let a, let b): return "partition \(a) \(b)"
        case .loss(let n, let p): return "loss \(n) \(FaultRules.percentText(p))"
        case .rate(let n, let r): return "rate \(n) \(FaultRules.rateText(r))"
        }
    }
}

public enum FaultRules {
    public static let table = "mangle"
    public static let inChain = "MINIK-FAULTS-IN"
    public static let outChain = "MINIK-FAULTS-OUT"
    public static let commentPrefix = "minik fault: "
    /// The jumps into the fault chains, as iptables-save prints them.
    public static func hooks(uplink: String) -> [(chain: String, rule: String)] {
        [("PREROUTING", "-i \(uplink) -m comment --comment \"minik faults\" -j \(inChain)"),
         ("POSTROUTING", "-o \(uplink) -m comment --comment \"minik faults\" -j \(outChain)")]
    }

    /// The rules of one node's fault chains for `faults` (the node's own loss and its
    /// partitions; `addresses` gives each peer's underlay address).
    public static func rules(node: String, faults: [Fault], addresses: [String: IPv4Address]) -> (in: [String], out: [String]) {
        var inRules: [String] = [], outRules: [String] = []
        for f in faults.sorted(by: { $0.description < $1.description }) {
            let comment = "-m comment --comment \"\(commentPrefix)\(f.description)\" -j DROP"
            switch f {
            case .partition(let a, let b) where a == node || b == node:
                guard let peer = addresses[a == node ? b : a] else { continue }
                inRules.append("-s \(peer)/32 \(comment)")
                outRules.append("-d \(peer)/32 \(comment)")
            case .loss(let n, let p) where n == node:
                let match = "-m statistic --mode random --probability \(probabilityText(p / 100))"
                inRules.append("\(match) \(comment)")
                outRules.append("\(match) \(comment)")
            default:
                continue
            }
        }
        return (inRules, outRules)
    }

    /// An `iptables-restore --noflush` batch that makes the node's fault chains hold
    /// exactly `rules`: declared chains are emptied first; the hooks are added when
    /// `hooksPresent` says they are missing, and removed with the chains when no rule is left.
    public static func restoreText(rules: (in: [String], out: [String]), uplink: String, hooksPresent: Bool) -> String {
        var lines = ["*\(table)"]
        let empty = rules.in.isEmpty && rules.out.isEmpty
        if empty {
            guard hooksPresent else { return "" }
            lines.append(":\(inChain) - [0:0]")
            lines.append(":\(outChain) - [0:0]")
            for h in hooks(uplink: uplink) { lines.append("-D \(h.chain) \(h.rule)") }
            lines.append("-X \(inChain)")
            lines.append("-X \(outChain)")
        } else {
            lines.append(":\(inChain) - [0:0]")
            lines.append(":\(outChain) - [0:0]")
            lines += rules.in.map { "-A \(inChain) \($0)" }
            lines += rules.out.map { "-A \(outChain) \($0)" }
            if !hooksPresent { for h in hooks(uplink: uplink) { lines.append("-A \(h.chain) \(h.rule)") } }
        }
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    /// What `iptables-save -c -t mangle` shows of the fault chains: the faults named by
    /// their rules' comments, with the packets each dropped (both directions summed), and
    /// whether the hooks are there. A rule in the chains without minik's comment (made by
    /// hand) is kept as text.
    public struct Observed: Sendable, Equatable {
        public var faults: [Fault: UInt64] = [:]
        public var handMade: [String] = []
        public var hooksPresent = false
    }

    public static func parse(save text: String, node: String) -> Observed {
        var o = Observed()
        for raw in text.split(separator: "\n") {
            var line = Substring(raw)
            var packets: UInt64 = 0
            if line.hasPrefix("["), let close = line.firstIndex(of: "]") {
                packets = UInt64(line[line.index(after: line.startIndex)..<close].split(separator: ":").first ?? "") ?? 0
                line = line[line.index(after: close)...].drop { $0 == " " }
            }
            if line.hasPrefix("-A PREROUTING ") || line.hasPrefix("-A POSTROUTING ") {
                if line.hasSuffix("-j \(inChain)") || line.hasSuffix("-j \(outChain)") { o.hooksPresent = true }
                continue
            }
            guard line.hasPrefix("-A \(inChain) ") || line.hasPrefix("-A \(outChain) ") else { continue }
            if let fault = fault(inRule: String(line), node: node) {
                o.faults[fault, default: 0] += packets
            } else {
                o.handMade.append(String(line))
            }
        }
        return o
    }

    /// The fault a rule's comment names (nil for a rule minik did not write).
    static func fault(inRule rule: String, node: String) -> Fault? {
        guard let start = rule.range(of: "--comment \"\(commentPrefix)") else { return nil }
        let rest = rule[start.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        let words = rest[..<end].split(separator: " ").map(String.init)
        switch (words.first, words.count) {
        case ("partition", 3) where words[1] != words[2]: return .partitionOf(words[1], words[2])
        case ("loss", 3): return parsePercent(words[2]).map { .loss(node: words[1], percent: $0) }
        default: return nil
        }
    }

    // MARK: - values as a user writes them

    /// "20%" or "20" (0 < P <= 100).
    public static func parsePercent(_ text: String) -> Double? {
        let t = text.hasSuffix("%") ? String(text.dropLast()) : text
        guard let v = Double(t), v > 0, v <= 100 else { return nil }
        return v
    }

    public static func percentText(_ p: Double) -> String {
        p == p.rounded() ? "\(Int(p))%" : "\(p)%"
    }

    /// The statistic match's probability as iptables-save prints it (11 decimals).
    static func probabilityText(_ p: Double) -> String {
        let scaled = Int((p * 100_000_000_000).rounded())
        let whole = scaled / 100_000_000_000, frac = scaled % 100_000_000_000
        let digits = String(frac)
        return "\(whole)." + String(repeating: "0", count: 11 - digits.count) + digits
    }

    /// A rate as `tc` takes it: a number and a unit, bit/kbit/mbit/gbit/tbit (bits per
    /// second, powers of 1000) or bps/kbps/mbps/gbps (bytes per second); a bare number is
    /// bits per second. Returns bits per second (at least 8).
    public static func parseRate(_ text: String) -> UInt64? {
        let lower = text.lowercased()
        let number = lower.prefix { $0.isNumber || $0 == "." }
        guard let value = Double(number), value > 0 else { return nil }
        let units: [String: Double] = [
            "": 1, "bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
            "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9,
        ]
        guard let scale = units[String(lower.dropFirst(number.count))] else { return nil }
        let bits = value * scale
        guard bits >= 8, bits < 1e15 else { return nil }
        return UInt64(bits.rounded())
    }

    /// Bits per second as tc prints them: "10Mbit", "1.5Gbit", "800Kbit".
    public static func rateText(_ bits: UInt64) -> String {
        for (scale, unit) in [(1e12, "Tbit"), (1e9, "Gbit"), (1e6, "Mbit"), (1e3, "Kbit")] where Double(bits) >= scale {
            let v = Double(bits) / scale
            let text = v == v.rounded() ? String(Int(v)) : String(format: "%.3g", v)
            return text + unit
        }
        return "\(bits)bit"
    }

    /// The tbf for a rate: a bucket of 20 ms of traffic (at least 16 KiB, more than one
    /// full frame) and a queue of 100 ms (at least two buckets).
    public static func tbf(bitsPerSecond: UInt64) -> (rate: UInt64, burst: UInt32, limit: UInt32) {
        let bytes = max(bitsPerSecond / 8, 1)
        let burst = UInt32(min(max(bytes / 50, 16_384), UInt64(UInt32.max / 4)))
        let limit = UInt32(min(max(bytes / 10, UInt64(burst) * 2), UInt64(UInt32.max / 2)))
        return (bytes, burst, limit)
    }
}
