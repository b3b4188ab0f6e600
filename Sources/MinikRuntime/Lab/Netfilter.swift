// Netfilter as `iptables-save -c` prints it, and one packet walked through it: the rules
// it matches in order, the jumps and returns, the verdict, the rule that gave it (with
// its comment) and the NAT it does. Pure: `trace` reads the text from each node and
// follows its packet through the hooks here.
//
// The matches kube-proxy, the masquerade agent and minik's faults use are understood:
// -s/-d/-i/-o/-p (with !), --dport/--sport, multiport, addrtype LOCAL, conntrack state
// (a trace's packet is NEW), mark, comment, statistic. A random `statistic` match is
// taken when `followRandom` allows it (the service's first endpoint rule is taken, as
// `trace` explains), and is reported with its probability. A match it does not know
// makes the rule count as not matched, and the step says so.
import MinikSpec

public enum Netfilter {
    public struct Rule: Sendable, Equatable {
        public var chain: String
        public var text: String
        public var packets: UInt64
        public var comment: String?
    }

    public struct Table: Sendable, Equatable {
        public var name: String
        public var policies: [String: String] = [:]
        public var chains: [String: [Rule]] = [:]
    }

    /// `iptables-save -c` text into tables.
    public static func parse(save text: String) -> [String: Table] {
        var tables: [String: Table] = [:]
        var current: Table?
        for raw in text.split(separator: "\n") {
            var line = Substring(raw)
            if line.hasPrefix("*") {
                current = Table(name: String(line.dropFirst()))
                continue
            }
            guard current != nil else { continue }
            if line == "COMMIT" {
                tables[current!.name] = current
                current = nil
                continue
            }
            if line.hasPrefix(":") {
                let parts = line.dropFirst().split(separator: " ")
                if parts.count >= 2 {
                    current!.policies[String(parts[0])] = String(parts[1])
                    if current!.chains[String(parts[0])] == nil { current!.chains[String(parts[0])] = [] }
                }
                continue
            }
            var packets: UInt64 = 0
            if line.hasPrefix("["), let close = line.firstIndex(of: "]") {
                packets = UInt64(line[line.index(after: line.startIndex)..<close].split(separator: ":").first ?? "") ?? 0
                line = line[line.index(after: close)...].drop { $0 == " " }
            }
            guard line.hasPrefix("-A ") else { continue }
            let words = tokens(String(line))
            guard words.count >= 2 else { continue }
            var comment: String?
            if let i = words.firstIndex(of: "--comment"), i + 1 < words.count { comment = words[i + 1] }
            current!.chains[words[1], default: []].append(Rule(chain: words[1], text: String(line), packets: packets, comment: comment))
        }
        return tables
    }

    /// Words of a rule, quotes removed ("a b" is one word).
    public static func tokens(_ s: String) -> [String] {
        var out: [String] = [], cur = "", quoted = false, any = false
        for c in s {
            if c == "\"" { quoted.toggle(); any = true; continue }
            if c == " " && !quoted {
                if any || !cur.isEmpty { out.append(cur) }
                cur = ""; any = false
                continue
            }
            cur.append(c)
        }
        if any || !cur.isEmpty { out.append(cur) }
        return out
    }

    /// The packet a trace follows.
    public struct Packet: Sendable, Equatable, Codable {
        public var source: IPv4Address
        public var destination: IPv4Address
        public var proto: String
        public var sourcePort: Int
        public var destinationPort: Int
        public var inInterface: String?
        public var outInterface: String?
        public var mark: UInt32 = 0

        public init(source: IPv4Address, destination: IPv4Address, proto: String, sourcePort: Int, destinationPort: Int,
                    inInterface: String? = nil, outInterface: String? = nil) {
            self.source = source
            self.destination = destination
            self.proto = proto
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
            self.inInterface = inInterface
            self.outInterface = outInterface
        }
    }

    /// One rule that matched, in the order the packet met them.
    public struct Step: Sendable, Equatable {
        public var table: String
        public var chain: String
        public var rule: String
        public var comment: String?
        /// What it did: "jump KUBE-SVC-...", "DNAT to 10.244.2.4:8080", "DROP", "mark 0x4000"...
        public var action: String
        /// A random match taken (its probability), or a match not understood.
        public var note: String?
        /// The chains the packet went through to get here, from the hook's, each with the
        /// comment of the rule that jumped to it: "KUBE-SVC-X (\"default/web:http cluster IP\")".
        public var via: [String] = []

        /// Changed the packet or decided its fate (not a jump, a count or a plain return).
        public var isDecisive: Bool {
            !(action == "count" || action.hasPrefix("jump ") || (action == "RETURN" && comment == nil))
        }
    }

    public enum Verdict: Sendable, Equatable {
        case accept
        case drop(String)
        /// The chain's policy decided (ACCEPT or DROP).
        case policy(String)
    }

    public struct Result: Sendable, Equatable {
        public var steps: [Step]
        public var verdict: Verdict
        public var packet: Packet
        /// (before, after) when the destination or source was rewritten.
        public var dnat: (from: String, to: String)?
        public var snat: String?
        /// Rules passed over because they use a match minik does not understand.
        public var notUnderstood: [String] = []

        public static func == (a: Result, b: Result) -> Bool {
            a.steps == b.steps && a.verdict == b.verdict && a.packet == b.packet && a.dnat?.from == b.dnat?.from
                && a.dnat?.to == b.dnat?.to && a.snat == b.snat
        }
    }

    /// Walks `packet` through `chain` of `table` (a built-in chain: PREROUTING, FORWARD...).
    /// `localAddresses` are the namespace's own (for addrtype LOCAL).
    /// `chosen`: the chains the kernel jumped to in a live trace; a random match is then
    /// taken only where it leads to one of them (the endpoint the kernel picked).
    public static func walk(_ tables: [String: Table], table name: String, chain: String, packet: Packet,
                            localAddresses: Set<IPv4Address>, chosen: Set<String> = []) -> Result {
        var result = Result(steps: [], verdict: .accept, packet: packet, dnat: nil, snat: nil, notUnderstood: [])
        guard let table = tables[name] else { return result }
        var stack: [String] = [chain]
        func run(_ chain: String) -> Bool {  // true: a final verdict was reached
            guard stack.count < 64, let rules = table.chains[chain] else { return false }
            for rule in rules {
                let m = matches(rule, result.packet, local: localAddresses, chosen: chosen)
                guard m.matched else {
                    if let note = m.note { result.notUnderstood.append("\(chain): \(rule.text): \(note)") }
                    continue
                }
                let words = tokens(rule.text)
                let target = value(words, "-j") ?? value(words, "-g")
                var step = Step(table: name, chain: chain, rule: rule.text, comment: rule.comment, action: "", note: m.note, via: stack)
                switch target {
                case nil:
                    step.action = "count"
                    result.steps.append(step)
                case "ACCEPT":
                    step.action = "ACCEPT"
                    result.steps.append(step)
                    result.verdict = .accept
                    return true
                case "DROP", "REJECT":
                    step.action = target!
                    result.steps.append(step)
                    result.verdict = .drop("\(name) \(chain): \(rule.comment.map { "\"\($0)\"" } ?? rule.text)")
                    return true
                case "RETURN":
                    step.action = "RETURN"
                    result.steps.append(step)
                    return false
                case "DNAT":
                    let to = value(words, "--to-destination") ?? ""
                    let before = "\(result.packet.destination):\(result.packet.destinationPort)"
                    let parts = to.split(separator: ":")
                    if let ip = parts.first.flatMap({ IPv4Address(String($0)) }) { result.packet.destination = ip }
                    if parts.count > 1, let port = Int(parts[1]) { result.packet.destinationPort = port }
                    result.dnat = (before, "\(result.packet.destination):\(result.packet.destinationPort)")
                    step.action = "DNAT \(before) -> \(result.dnat!.to)"
                    result.steps.append(step)
                    result.verdict = .accept
                    return true
                case "SNAT", "MASQUERADE":
                    let to = value(words, "--to-source") ?? "the outgoing interface's address"
                    result.snat = target == "MASQUERADE" ? "masqueraded to the outgoing interface's address" : "SNAT to \(to)"
                    step.action = result.snat!
                    result.steps.append(step)
                    result.verdict = .accept
                    return true
                case "MARK":
                    if let x = value(words, "--set-xmark") {
                        let p = x.split(separator: "/").map { UInt32($0.dropFirst(2), radix: 16) ?? 0 }
                        let mask = p.count > 1 ? p[1] : UInt32.max
                        result.packet.mark = (result.packet.mark & ~mask) ^ p[0]
                    } else if let o = value(words, "--or-mark"), let v = UInt32(o.dropFirst(2), radix: 16) {
                        result.packet.mark |= v
                    } else if let x = value(words, "--xor-mark"), let v = UInt32(x.dropFirst(2), radix: 16) {
                        result.packet.mark ^= v
                    }
                    step.action = "mark 0x\(String(result.packet.mark, radix: 16))"
                    result.steps.append(step)
                case "LOG", "TRACE", "NFLOG", "CT", "CONNMARK", "NOTRACK":
                    step.action = target!
                    result.steps.append(step)
                case let t?:
                    step.action = "jump \(t)"
                    result.steps.append(step)
                    stack.append(t + (rule.comment.map { " (\"\($0)\")" } ?? ""))
                    let decided = run(t)
                    stack.removeLast()
                    if decided { return true }
                    if value(words, "-g") != nil { return false }
                }
            }
            return false
        }
        if !run(chain) {
            let policy = table.policies[chain] ?? "ACCEPT"
            result.verdict = policy == "DROP" ? .drop("\(name) \(chain): policy DROP") : .policy(policy)
        }
        return result
    }

    static func value(_ words: [String], _ flag: String) -> String? {
        guard let i = words.firstIndex(of: flag), i + 1 < words.count else { return nil }
        return words[i + 1]
    }

    /// Whether the rule's matches hold for the packet, and a note for a random match
    /// taken or a match not understood.
    static func matches(_ rule: Rule, _ p: Packet, local: Set<IPv4Address>, chosen: Set<String> = []) -> (matched: Bool, note: String?) {
        let w = tokens(rule.text)
        var i = 2
        var negate = false
        var note: String?
        func cidr(_ s: String) -> IPv4CIDR? {
            s.contains("/") ? try? IPv4CIDR.parse(s) : IPv4Address(s).map { IPv4CIDR(network: $0, prefix: 32) }
        }
        func ports(_ s: String) -> [ClosedRange<Int>] {
            s.split(separator: ",").compactMap { part in
                let b = part.split(separator: ":").compactMap { Int($0) }
                return b.isEmpty ? nil : b[0]...(b.count > 1 ? b[1] : b[0])
            }
        }
        while i < w.count {
            let word = w[i]
            let next = i + 1 < w.count ? w[i + 1] : ""
            var ok: Bool? = nil
            switch word {
            case "!": negate = true; i += 1; continue
            case "-j", "-g": i = w.count; continue
            case "-s": ok = cidr(next)?.contains(p.source) ?? false; i += 1
            case "-d": ok = cidr(next)?.contains(p.destination) ?? false; i += 1
            case "-i": ok = iface(next, p.inInterface); i += 1
            case "-o": ok = iface(next, p.outInterface); i += 1
            case "-p": ok = next.lowercased() == p.proto.lowercased(); i += 1
            case "--dport", "--dports", "--destination-port": ok = ports(next).contains { $0.contains(p.destinationPort) }; i += 1
            case "--sport", "--sports", "--source-port": ok = ports(next).contains { $0.contains(p.sourcePort) }; i += 1
            case "--dst-type": ok = next == "LOCAL" ? local.contains(p.destination) : !local.contains(p.destination); i += 1
            case "--src-type": ok = next == "LOCAL" ? local.contains(p.source) : !local.contains(p.source); i += 1
            case "--ctstate", "--state": ok = next.split(separator: ",").contains("NEW"); i += 1
            case "--mark":
                let parts = next.split(separator: "/").map { UInt32($0.dropFirst(2), radix: 16) ?? 0 }
                let mask = parts.count > 1 ? parts[1] : UInt32.max
                ok = p.mark & mask == parts[0]
                i += 1
            case "--probability":
                if chosen.isEmpty {
                    note = "random: taken with probability \(next)"
                    ok = true
                } else {
                    let target = value(w, "-j") ?? value(w, "-g") ?? ""
                    ok = chosen.contains(target)
                    note = ok == true ? "random (probability \(next)): the one the kernel picked" : nil
                }
                i += 1
            case "--comment", "--mode", "--name", "--mask", "--seconds", "--hitcount":
                i += 1
            case "--reap", "--rsource", "--rdest", "--set", "--random-fully", "--random":
                break
            case "-m", "--rcheck", "--update":
                if word == "-m" { i += 1 }
                if word == "--rcheck" || word == "--update" { ok = false }  // no affinity entry for a new client
            case let flag where flag.hasPrefix("-"):
                return (false, "\(flag) is not understood by minik trace: taken as not matching")
            default:
                break
            }
            if let o = ok {
                if o == negate { return (false, nil) }
            }
            negate = false
            i += 1
        }
        return (true, note)
    }

    static func iface(_ pattern: String, _ name: String?) -> Bool {
        guard let name else { return false }
        if pattern.hasSuffix("+") { return name.hasPrefix(pattern.dropLast()) }
        return name == pattern
    }
}
