// The cluster zone as the server holds it: records by name, the names that exist (every
// record's name and its ancestors up to the zone, so an empty non-terminal such as
// svc.cluster.local answers NODATA rather than NXDOMAIN), the reverse ranges the cluster
// owns, and the upstreams for everything else. `resolve` gives the answer to one question
// as RFC 1034 4.3.2 describes it for an authoritative server, plus the deprecated
// a-b-c-d.<ns>.pod.<zone> names of the Kubernetes DNS specification (any address, as
// CoreDNS's "pods insecure" mode answers them).

public struct Upstream: Hashable, Sendable, CustomStringConvertible {
    public var ip: IPv4Address
    public var port: UInt16
    public init(ip: IPv4Address, port: UInt16 = 53) {
        self.ip = ip
        self.port = port
    }
    public var description: String { port == 53 ? ip.description : "\(ip):\(port)" }
}

/// Ranges the cluster owns, answered from the zone (reverse lookups).
extension IPv4CIDR {
    /// "10.96.0.0/12"; host bits are cleared (the zone file's `reverse` lines).
    public init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let ip = IPv4Address(String(parts[0])), let p = Int(parts[1]), (0...32).contains(p) else { return nil }
        self.init(network: ip, prefix: p)
    }

    /// The reverse zone on an octet boundary that holds the range (10.96.0.0/12:
    /// 10.in-addr.arpa), the owner of the SOA in its negative answers.
    public var reverseZone: DNSName {
        let octets = network.octets.prefix(prefix / 8)
        return DNSName(labels: octets.reversed().map { Array(String($0).utf8) } + [Array("in-addr".utf8), Array("arpa".utf8)])
    }
}

/// What to do with a question.
public enum Resolution: Equatable, Sendable {
    /// An answer from the zone: rcode, the three sections, and whether authoritative.
    case answer(rcode: RCode, answers: [ResourceRecord], authority: [ResourceRecord], additional: [ResourceRecord])
    /// Not the cluster's: ask an upstream.
    case forward
    /// Not the cluster's and no upstream: REFUSED at once.
    case refused
}

public final class Zone: Sendable {
    public let domain: DNSName
    public let ttl: UInt32
    public let upstreams: [Upstream]
    public let reverseRanges: [IPv4CIDR]
    /// Namespaces: <ns>.pod.<zone> exists for each.
    public let namespaces: Set<[UInt8]>
    /// Records by the key of their name.
    public let records: [[UInt8]: [ResourceRecord]]
    /// Keys of every name that exists (records' names and their ancestors in the zone).
    public let existing: Set<[UInt8]>
    public let serial: UInt32
    public let soa: ResourceRecord
    let podZone: DNSName
    static let inAddrArpa = try! DNSName("in-addr.arpa")

    public init(domain: DNSName, ttl: UInt32, serial: UInt32 = 1, upstreams: [Upstream] = [], reverseRanges: [IPv4CIDR] = [],
                namespaces: [String] = [], records list: [ResourceRecord]) {
        let domain = domain.lowercased()
        self.domain = domain
        self.ttl = ttl
        self.serial = serial
        self.upstreams = upstreams
        self.reverseRanges = reverseRanges
        self.namespaces = Set(namespaces.map { DNSName(labels: [Array($0.utf8)]).key })
        podZone = domain.prepending("pod")
        soa = ResourceRecord(name: domain, type: .soa, ttl: ttl, data: .soa(
            mname: domain.prepending("dns").prepending("ns"), rname: domain.prepending("hostmaster"), serial: serial,
            refresh: 7200, retry: 1800, expire: 86400, minimum: ttl))
        let nameServer = domain.prepending("dns").prepending("ns")
        var apexRecords = [soa, ResourceRecord(name: domain, type: .ns, ttl: ttl, data: .ns(nameServer))]
        // The reverse zones' apexes (10.in-addr.arpa...) have theirs too: negative answers
        // below them carry that SOA.
        for r in reverseRanges where r.prefix >= 8 {
            var s = soa
            s.name = r.reverseZone
            apexRecords += [s, ResourceRecord(name: r.reverseZone, type: .ns, ttl: ttl, data: .ns(nameServer))]
        }
        var byName: [[UInt8]: [ResourceRecord]] = [:]
        var exists = Set<[UInt8]>()
        for rr in apexRecords + list {
            let rr = ResourceRecord(name: rr.name.lowercased(), type: rr.type, klass: rr.klass, ttl: rr.ttl, data: rr.data)
            let key = rr.name.key
            if byName[key]?.contains(rr) == true { continue }
            byName[key, default: []].append(rr)
            // The name and its ancestors down to the zone (or in-addr.arpa) exist.
            var n = rr.name
            while !n.labels.isEmpty, exists.insert(n.key).inserted, n != domain, n != Zone.inAddrArpa {
                n = n.dropping(1)
            }
        }
        exists.insert(podZone.key)
        for ns in namespaces { exists.insert(podZone.prepending(ns).key) }
        records = byName
        existing = exists
    }

    public func isInZone(_ name: DNSName) -> Bool { name.isSubdomain(of: domain) }

    /// Whether the name is one the cluster answers for: in the zone, or a reverse name
    /// inside one of its ranges.
    public func isAuthoritative(for name: DNSName) -> Bool {
        if isInZone(name) { return true }
        return reverseRange(of: name) != nil
    }

    func reverseRange(of name: DNSName) -> IPv4CIDR? {
        guard name.isSubdomain(of: Zone.inAddrArpa) else { return nil }
        let octets = name.labels.count - 2
        guard octets >= 1, octets <= 4 else { return nil }
        var value: UInt32 = 0
        for i in 0..<octets {
            guard let text = String(validating: name.labels[octets - 1 - i], as: UTF8.self), let o = UInt8(text),
                  String(o) == text else { return nil }
            value |= UInt32(o) << (24 - 8 * i)
        }
        // The name covers value/(8*octets); it is ours when a range holds all of it, or
        // (for a partial name) when it holds some of a range.
        let covered = IPv4CIDR(network: IPv4Address(value), prefix: octets * 8)
        return reverseRanges.first { r in
            r.prefix <= covered.prefix ? r.contains(covered.network) : covered.contains(r.network)
        }
    }

    /// a-b-c-d.<ns>.pod.<zone> -> a.b.c.d, in a namespace that exists (as CoreDNS checks:
    /// <ns>.pod.<zone> must not be NXDOMAIN with a name below it, RFC 8020).
    func podAddress(_ name: DNSName) -> IPv4Address? {
        guard name.labels.count == podZone.labels.count + 2, name.isSubdomain(of: podZone) else { return nil }
        guard namespaces.contains(DNSName(labels: [name.labels[1]]).key) else { return nil }
        guard let text = String(validating: name.labels[0], as: UTF8.self) else { return nil }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        return IPv4Address(parts.joined(separator: "."))
    }

    public func resolve(_ q: Question) -> Resolution {
        let name = q.name
        if !isInZone(name) {
            if let range = reverseRange(of: name) { return authoritative(name, q.type, negativeOwner: range.reverseZone) }
            return upstreams.isEmpty ? .refused : .forward
        }
        return authoritative(name, q.type, negativeOwner: domain)
    }

    private func negativeSOA(_ owner: DNSName) -> ResourceRecord {
        var s = soa
        s.name = owner
        return s
    }

    private func authoritative(_ name: DNSName, _ type: RRType, negativeOwner: DNSName) -> Resolution {
        var answers: [ResourceRecord] = []
        var additional: [ResourceRecord] = []
        var current = name
        var owner = negativeOwner
        var seen = Set<[UInt8]>()
        // Follow CNAMEs inside what the cluster answers for (at most 8), as RFC 1034 4.3.2
        // step 3a says; a CNAME out of it ends the answer (the client asks for the target).
        for _ in 0...8 { // 8 CNAMEs, then the name they lead to
            let key = current.key
            guard seen.insert(key).inserted else { break }
            if records[key] == nil, let podIP = podAddress(current) {
                if type == .a || type == .any {
                    answers.append(ResourceRecord(name: current, type: .a, ttl: ttl, data: .a(podIP)))
                    return .answer(rcode: .noError, answers: answers, authority: [], additional: [])
                }
                return .answer(rcode: .noError, answers: answers, authority: [negativeSOA(owner)], additional: [])
            }
            let here = records[key] ?? []
            if type != .cname, type != .any, let cname = here.first(where: { $0.type == .cname }) {
                var rr = cname
                rr.name = current
                answers.append(rr)
                guard case .cname(let target) = cname.data else { break }
                if isInZone(target) {
                    owner = domain
                } else if let range = reverseRange(of: target) {
                    owner = range.reverseZone
                } else {
                    return .answer(rcode: .noError, answers: answers, authority: [], additional: [])
                }
                current = target
                continue
            }
            let matching = here.filter { type == .any || $0.type == type }
            if matching.isEmpty {
                // RFC 2308: NXDOMAIN when the name does not exist (also at the end of a
                // CNAME chain, RFC 6604), NODATA when it exists with nothing of this type.
                let rcode: RCode = existing.contains(key) ? .noError : .nxDomain
                return .answer(rcode: rcode, answers: answers, authority: [negativeSOA(owner)], additional: [])
            }
            // The owner name as asked (case kept, RFC 4343).
            answers += matching.map { var rr = $0; rr.name = current; return rr }
            for case .srv(_, _, _, let target) in matching.map(\.data) {
                for rr in records[target.key] ?? [] where rr.type == .a && !additional.contains(rr) { additional.append(rr) }
            }
            return .answer(rcode: .noError, answers: answers, authority: [], additional: additional)
        }
        // A CNAME loop or a chain longer than 8: what was found, as BIND answers it.
        return .answer(rcode: .servFail, answers: [], authority: [], additional: [])
    }
}
