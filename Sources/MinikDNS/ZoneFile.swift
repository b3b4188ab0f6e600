// The file through which the supervisor hands the cluster's records to the DNS pods
// (mounted read-only at /etc/minik-dns/zone, replaced atomically on every change).
// One directive or record per line, fields separated by spaces, '#' starts a comment:
//
//   minik-dns-zone 1                      format version, first line
//   domain cluster.local                  the cluster zone
//   ttl 5                                 TTL of every record, and of negative answers
//   serial 42                             the SOA serial (changes with the contents)
//   upstream 10.96.100.53:53              where names outside the cluster go (0-3 lines)
//   reverse 10.96.0.0/12                  ranges whose reverse names the zone answers
//   namespace default                     namespaces (<ns>.pod.<zone> exists)
//   A web.default.svc.cluster.local 10.96.0.5
//   SRV _http._tcp.web.default.svc.cluster.local 0 100 80 web.default.svc.cluster.local
//   CNAME db.default.svc.cluster.local db.example.test
//   PTR 5.0.96.10.in-addr.arpa web.default.svc.cluster.local
//   TXT dns-version.cluster.local 1.1.0
//
// It is plain text so that a user can read what the server serves.

public struct ZoneFile: Equatable, Sendable {
    public var domain: DNSName
    public var ttl: UInt32 = 5
    public var serial: UInt32 = 1
    public var upstreams: [Upstream] = []
    public var reverseRanges: [IPv4CIDR] = []
    public var namespaces: [String] = []
    /// Records without TTL or class (the file's TTL applies).
    public var records: [(name: DNSName, data: RData)] = []
    /// Records left out when the zone was made (names over 255 bytes); not in the file.
    public var skipped = 0

    public static let header = "minik-dns-zone 1"

    public init(domain: DNSName) { self.domain = domain }

    public static func == (a: ZoneFile, b: ZoneFile) -> Bool { a.render() == b.render() }

    public var zone: Zone {
        Zone(domain: domain, ttl: ttl, serial: serial, upstreams: upstreams, reverseRanges: reverseRanges, namespaces: namespaces,
             records: records.map { ResourceRecord(name: $0.name, type: ZoneFile.type(of: $0.data), ttl: ttl, data: $0.data) })
    }

    static func type(of d: RData) -> RRType {
        switch d {
        case .a: return .a
        case .ns: return .ns
        case .cname: return .cname
        case .ptr: return .ptr
        case .soa: return .soa
        case .txt: return .txt
        case .srv: return .srv
        case .raw: return RRType(0)
        }
    }

    public func render() -> String {
        var out = "\(ZoneFile.header)\ndomain \(domain)\nttl \(ttl)\nserial \(serial)\n"
        for u in upstreams { out += "upstream \(u.ip):\(u.port)\n" }
        for r in reverseRanges { out += "reverse \(r)\n" }
        for n in namespaces { out += "namespace \(n)\n" }
        for (name, data) in records {
            switch data {
            case .a(let ip): out += "A \(name) \(ip)\n"
            case .cname(let t): out += "CNAME \(name) \(t)\n"
            case .ptr(let t): out += "PTR \(name) \(t)\n"
            case .ns(let t): out += "NS \(name) \(t)\n"
            case .srv(let p, let w, let port, let t): out += "SRV \(name) \(p) \(w) \(port) \(t)\n"
            case .txt(let strings): out += "TXT \(name) \(strings.map { String(decoding: $0, as: UTF8.self) }.joined(separator: " "))\n"
            case .soa, .raw: continue
            }
        }
        return out
    }

    /// Parses a zone file; an error names the line.
    public static func parse(_ text: String) throws(DNSError) -> ZoneFile {
        var file: ZoneFile?
        var sawHeader = false
        let bytes = Array(text.utf8)
        var lineStart = 0
        var lineNumber = 0
        var fields: [ArraySlice<UInt8>] = []
        // Bytes, not Strings: a zone of 10,000 services has 30,000 lines.
        while lineStart <= bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count && bytes[lineEnd] != 10 { lineEnd += 1 }
            lineNumber += 1
            let number = lineNumber
            var contentEnd = lineStart
            while contentEnd < lineEnd && bytes[contentEnd] != 35 { contentEnd += 1 } // '#'
            fields.removeAll(keepingCapacity: true)
            var i = lineStart
            while i < contentEnd {
                while i < contentEnd && (bytes[i] == 32 || bytes[i] == 9 || bytes[i] == 13) { i += 1 }
                let start = i
                while i < contentEnd && bytes[i] != 32 && bytes[i] != 9 && bytes[i] != 13 { i += 1 }
                if i > start { fields.append(bytes[start..<i]) }
            }
            lineStart = lineEnd + 1
            guard let first = fields.first else { continue }
            func fail(_ why: String) -> DNSError { DNSError("zone line \(number): \(why)") }
            func name(_ s: ArraySlice<UInt8>) throws(DNSError) -> DNSName {
                do { return try DNSName(text: s) } catch { throw fail(error.message) }
            }
            if !sawHeader {
                guard fields.map({ String(decoding: $0, as: UTF8.self) }).joined(separator: " ") == ZoneFile.header else {
                    throw fail("expected \"\(ZoneFile.header)\"")
                }
                sawHeader = true
                continue
            }
            if first.elementsEqual("domain".utf8) {
                guard fields.count == 2 else { throw fail("domain NAME") }
                let domain = try name(fields[1])
                if domain.labels.isEmpty { throw fail("the domain cannot be the root") }
                file = ZoneFile(domain: domain)
                continue
            }
            guard file != nil else { throw fail("\"domain\" must come before \(String(decoding: first, as: UTF8.self))") }
            // The common records straight from bytes; changed in place (a copy of the
            // file per line would make loading quadratic).
            if first.elementsEqual("A".utf8) && fields.count == 3, let ip = IPv4Address(text: fields[2]) {
                file!.records.append((try name(fields[1]), .a(ip)))
            } else if first.elementsEqual("PTR".utf8) && fields.count == 3 {
                file!.records.append((try name(fields[1]), .ptr(try name(fields[2]))))
            } else if first.elementsEqual("SRV".utf8) && fields.count == 6,
                      let p = UInt16(String(decoding: fields[2], as: UTF8.self)), let w = UInt16(String(decoding: fields[3], as: UTF8.self)),
                      let port = UInt16(String(decoding: fields[4], as: UTF8.self)) {
                file!.records.append((try name(fields[1]), .srv(priority: p, weight: w, port: port, target: try name(fields[5]))))
            } else {
                try ZoneFile.apply(fields.map { String(decoding: $0, as: UTF8.self) }, to: &file!, fail: fail) { s throws(DNSError) in
                    try name(ArraySlice(s.utf8))
                }
            }
        }
        guard sawHeader else { throw DNSError("zone: empty file") }
        guard let file else { throw DNSError("zone: no domain line") }
        return file
    }

    /// The other directives, from their fields as text.
    private static func apply(_ f: [String], to z: inout ZoneFile, fail: (String) -> DNSError,
                              name: (String) throws(DNSError) -> DNSName) throws(DNSError) {
            let first = f[0]
            switch first {
            case "ttl":
                guard f.count == 2, let v = UInt32(f[1]) else { throw fail("ttl SECONDS") }
                z.ttl = v
            case "serial":
                guard f.count == 2, let v = UInt32(f[1]) else { throw fail("serial NUMBER") }
                z.serial = v
            case "upstream":
                let parts = f.count == 2 ? f[1].split(separator: ":").map(String.init) : []
                guard parts.count == 1 || parts.count == 2, let ip = IPv4Address(parts[0]),
                      let port = parts.count == 2 ? UInt16(parts[1]) : 53, port > 0 else { throw fail("upstream IP[:PORT]") }
                z.upstreams.append(Upstream(ip: ip, port: port))
            case "reverse":
                guard f.count == 2, let r = IPv4CIDR(f[1]) else { throw fail("reverse CIDR") }
                z.reverseRanges.append(r)
            case "namespace":
                guard f.count == 2 else { throw fail("namespace NAME") }
                z.namespaces.append(f[1])
            case "A":
                guard f.count == 3, let ip = IPv4Address(f[2]) else { throw fail("A NAME IPV4") }
                z.records.append((try name(f[1]), .a(ip)))
            case "CNAME", "PTR", "NS":
                guard f.count == 3 else { throw fail("\(first) NAME TARGET") }
                let target = try name(f[2])
                z.records.append((try name(f[1]), first == "CNAME" ? .cname(target) : first == "PTR" ? .ptr(target) : .ns(target)))
            case "SRV":
                guard f.count == 6, let p = UInt16(f[2]), let w = UInt16(f[3]), let port = UInt16(f[4]) else {
                    throw fail("SRV NAME PRIORITY WEIGHT PORT TARGET")
                }
                z.records.append((try name(f[1]), .srv(priority: p, weight: w, port: port, target: try name(f[5]))))
            case "TXT":
                guard f.count >= 3 else { throw fail("TXT NAME TEXT...") }
                z.records.append((try name(f[1]), .txt(f[2...].map { Array($0.utf8.prefix(255)) })))
            default:
                throw fail("unknown directive \"\(first)\"")
            }
    }
}
