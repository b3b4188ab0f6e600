// The DNS message format (RFC 1035, EDNS0 from RFC 6891): names, questions, resource
// records and whole messages, decoded from and encoded to wire bytes. Decoding checks
// every length against the buffer and follows at most 64 compression pointers, each to
// an earlier offset, so no packet can make it read out of bounds or loop. Encoding
// compresses names against every name already written (RFC 1035 4.1.4).
// Pure Swift without Foundation: the DNS server links this module statically.
@_exported import MinikAddressing

public struct DNSError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Record and query types by number (unknown ones keep their number).
public struct RRType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ v: UInt16) { rawValue = v }

    public static let a = RRType(1), ns = RRType(2), cname = RRType(5), soa = RRType(6), ptr = RRType(12)
    public static let txt = RRType(16), aaaa = RRType(28), srv = RRType(33), opt = RRType(41)
    public static let ixfr = RRType(251), axfr = RRType(252), any = RRType(255)

    static let names: [(RRType, String)] = [
        (.a, "A"), (.ns, "NS"), (.cname, "CNAME"), (.soa, "SOA"), (.ptr, "PTR"), (.txt, "TXT"),
        (.aaaa, "AAAA"), (.srv, "SRV"), (.opt, "OPT"), (.ixfr, "IXFR"), (.axfr, "AXFR"), (.any, "ANY"),
    ]

    public init?(name: String) {
        guard let t = RRType.names.first(where: { $0.1 == name })?.0 else { return nil }
        self = t
    }

    public var description: String { RRType.names.first { $0.0 == self }?.1 ?? "TYPE\(rawValue)" }
}

public enum RCode: UInt8, Sendable {
    case noError = 0, formErr = 1, servFail = 2, nxDomain = 3, notImp = 4, refused = 5
}

public enum DNSClass {
    public static let `in`: UInt16 = 1
    public static let chaos: UInt16 = 3
    public static let any: UInt16 = 255
}

/// A domain name as labels (bytes as written, case kept). Comparisons in DNS ignore ASCII
/// case: use `key` for lookups.
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    public var labels: [[UInt8]]

    public static let root = DNSName(labels: [])
    public static let maxWireLength = 255

    public init(labels: [[UInt8]]) { self.labels = labels }

    /// "web.default.svc.cluster.local" (a trailing dot is allowed). Throws for an empty
    /// label, a label over 63 bytes or a name over 255 bytes on the wire.
    public init(_ text: String) throws(DNSError) {
        var s = Substring(text)
        if s.hasSuffix(".") { s = s.dropLast() }
        if s.isEmpty {
            labels = []
            return
        }
        var out: [[UInt8]] = []
        for part in s.split(separator: ".", omittingEmptySubsequences: false) {
            let bytes = Array(part.utf8)
            if bytes.isEmpty { throw DNSError("empty label in \"\(text)\"") }
            if bytes.count > 63 { throw DNSError("label longer than 63 bytes in \"\(text)\"") }
            out.append(bytes)
        }
        labels = out
        if wireLength > DNSName.maxWireLength { throw DNSError("name longer than 255 bytes: \"\(text)\"") }
    }

    /// The same from the text's bytes (the zone file's fast path).
    public init(text: ArraySlice<UInt8>) throws(DNSError) {
        var t = text
        if t.last == 46 { t = t.dropLast() }
        var out: [[UInt8]] = []
        var wire = 1
        var start = t.startIndex
        if !t.isEmpty {
            var i = t.startIndex
            while true {
                if i == t.endIndex || t[i] == 46 {
                    let count = i - start
                    if count == 0 { throw DNSError("empty label in \"\(String(decoding: text, as: UTF8.self))\"") }
                    if count > 63 { throw DNSError("label longer than 63 bytes in \"\(String(decoding: text, as: UTF8.self))\"") }
                    out.append(Array(t[start..<i]))
                    wire += 1 + count
                    if i == t.endIndex { break }
                    start = i + 1
                }
                i += 1
            }
        }
        if wire > DNSName.maxWireLength { throw DNSError("name longer than 255 bytes: \"\(String(decoding: text, as: UTF8.self))\"") }
        labels = out
    }

    public var wireLength: Int { labels.reduce(1) { $0 + 1 + $1.count } }

    /// The name in lower case, as wire bytes: what zones are indexed by.
    public var key: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(wireLength)
        for l in labels {
            out.append(UInt8(l.count))
            for b in l { out.append(lowerASCII(b)) }
        }
        out.append(0)
        return out
    }

    public func lowercased() -> DNSName { DNSName(labels: labels.map { $0.map(lowerASCII) }) }

    public func isSubdomain(of other: DNSName) -> Bool {
        guard other.labels.count <= labels.count else { return false }
        let offset = labels.count - other.labels.count
        for i in 0..<other.labels.count where !sameLabel(labels[offset + i], other.labels[i]) { return false }
        return true
    }

    /// The name without its first `n` labels.
    public func dropping(_ n: Int) -> DNSName { DNSName(labels: Array(labels.dropFirst(n))) }

    public func prepending(_ label: String) -> DNSName { DNSName(labels: [Array(label.utf8)] + labels) }

    public static func == (a: DNSName, b: DNSName) -> Bool {
        a.labels.count == b.labels.count && zip(a.labels, b.labels).allSatisfy { sameLabel($0, $1) }
    }

    public func hash(into h: inout Hasher) { h.combine(key) }

    /// Dotted text, with a trailing dot only for the root ("."); bytes other than
    /// letters, digits, '-' and '_' are escaped as \DDD (RFC 4343), '.' inside a label as "\.".
    public var description: String {
        if labels.isEmpty { return "." }
        return labels.map { l in
            var s = ""
            for b in l {
                switch b {
                case 0x30...0x39, 0x41...0x5a, 0x61...0x7a, 0x2d, 0x5f, 0x2a: s.unicodeScalars.append(Unicode.Scalar(b))
                case 0x2e, 0x5c: s += "\\" + String(Unicode.Scalar(b))
                default:
                    let d = String(b)
                    s += "\\" + String(repeating: "0", count: 3 - d.count) + d
                }
            }
            return s
        }.joined(separator: ".")
    }
}

@inline(__always) func lowerASCII(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5a ? b | 0x20 : b }

func sameLabel(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    for i in 0..<a.count where lowerASCII(a[i]) != lowerASCII(b[i]) { return false }
    return true
}

/// IPv4 addresses as DNS carries them (A records, PTR names).
extension IPv4Address {
    /// Dotted-quad from bytes.
    public init?(text: ArraySlice<UInt8>) {
        var v: UInt32 = 0, octet: UInt32 = 0, digits = 0, dots = 0
        for b in text {
            if b == 46 {
                guard digits > 0 else { return nil }
                v = v << 8 | octet
                octet = 0
                digits = 0
                dots += 1
            } else if b >= 48 && b <= 57 {
                if digits > 0 && octet == 0 { return nil } // no leading zeros
                octet = octet * 10 + UInt32(b - 48)
                digits += 1
                guard octet <= 255, digits <= 3 else { return nil }
            } else {
                return nil
            }
        }
        guard dots == 3, digits > 0 else { return nil }
        self.init(v << 8 | octet)
    }

    /// d.c.b.a.in-addr.arpa
    public var reverseName: DNSName {
        DNSName(labels: octets.reversed().map { Array(String($0).utf8) } + [Array("in-addr".utf8), Array("arpa".utf8)])
    }
}

public enum RData: Hashable, Sendable {
    case a(IPv4Address)
    case ns(DNSName)
    case cname(DNSName)
    case ptr(DNSName)
    case soa(mname: DNSName, rname: DNSName, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimum: UInt32)
    case txt([[UInt8]])
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName)
    /// Anything else, and OPT's options, as the bytes of its RDATA.
    case raw([UInt8])
}

public struct ResourceRecord: Hashable, Sendable {
    public var name: DNSName
    public var type: RRType
    public var klass: UInt16
    public var ttl: UInt32
    public var data: RData

    public init(name: DNSName, type: RRType, klass: UInt16 = DNSClass.in, ttl: UInt32, data: RData) {
        self.name = name
        self.type = type
        self.klass = klass
        self.ttl = ttl
        self.data = data
    }
}

public struct Question: Hashable, Sendable {
    public var name: DNSName
    public var type: RRType
    public var klass: UInt16

    public init(name: DNSName, type: RRType, klass: UInt16 = DNSClass.in) {
        self.name = name
        self.type = type
        self.klass = klass
    }
}

/// The EDNS0 OPT pseudo-record (RFC 6891 6.1.3): its class is the UDP payload size, its
/// TTL the extended RCODE, version and DO bit.
public struct EDNS: Hashable, Sendable {
    public var udpPayloadSize: UInt16
    public var extendedRCode: UInt8 = 0
    public var version: UInt8 = 0
    public var dnssecOK: Bool = false
    public var options: [UInt8] = []

    public init(udpPayloadSize: UInt16, extendedRCode: UInt8 = 0, version: UInt8 = 0, dnssecOK: Bool = false, options: [UInt8] = []) {
        self.udpPayloadSize = udpPayloadSize
        self.extendedRCode = extendedRCode
        self.version = version
        self.dnssecOK = dnssecOK
        self.options = options
    }
}

public struct Header: Hashable, Sendable {
    public var id: UInt16 = 0
    public var response = false
    public var opcode: UInt8 = 0
    public var authoritative = false
    public var truncated = false
    public var recursionDesired = false
    public var recursionAvailable = false
    public var authenticData = false
    public var checkingDisabled = false
    public var rcode: UInt8 = 0

    public init() {}

    public var flags: UInt16 {
        var f = UInt16(opcode & 0xf) << 11 | UInt16(rcode & 0xf)
        if response { f |= 0x8000 }
        if authoritative { f |= 0x0400 }
        if truncated { f |= 0x0200 }
        if recursionDesired { f |= 0x0100 }
        if recursionAvailable { f |= 0x0080 }
        if authenticData { f |= 0x0020 }
        if checkingDisabled { f |= 0x0010 }
        return f
    }

    public init(id: UInt16, flags f: UInt16) {
        self.id = id
        response = f & 0x8000 != 0
        opcode = UInt8(f >> 11 & 0xf)
        authoritative = f & 0x0400 != 0
        truncated = f & 0x0200 != 0
        recursionDesired = f & 0x0100 != 0
        recursionAvailable = f & 0x0080 != 0
        authenticData = f & 0x0020 != 0
        checkingDisabled = f & 0x0010 != 0
        rcode = UInt8(f & 0xf)
    }
}

public struct Message: Hashable, Sendable {
    public var header = Header()
    public var questions: [Question] = []
    public var answers: [ResourceRecord] = []
    public var authority: [ResourceRecord] = []
    /// Additional records other than OPT.
    public var additional: [ResourceRecord] = []
    public var edns: EDNS?

    public init() {}

    /// The full response code: 4 bits in the header, 8 more in OPT.
    public var rcode: Int { Int(edns?.extendedRCode ?? 0) << 4 | Int(header.rcode) }

    // MARK: decoding

    public init(decoding bytes: [UInt8]) throws(DNSError) {
        var r = WireReader(bytes)
        let id = try r.u16(), flags = try r.u16()
        header = Header(id: id, flags: flags)
        let qd = try r.u16(), an = try r.u16(), ns = try r.u16(), ar = try r.u16()
        for _ in 0..<qd {
            let name = try r.name()
            questions.append(Question(name: name, type: RRType(try r.u16()), klass: try r.u16()))
        }
        for _ in 0..<an { answers.append(try r.record()) }
        for _ in 0..<ns { authority.append(try r.record()) }
        for _ in 0..<ar {
            let rr = try r.record()
            if rr.type == .opt {
                guard edns == nil else { throw DNSError("more than one OPT record") }
                guard rr.name.labels.isEmpty else { throw DNSError("OPT record with a name other than the root") }
                guard case .raw(let options) = rr.data else { throw DNSError("OPT record data") }
                edns = EDNS(udpPayloadSize: rr.klass, extendedRCode: UInt8(rr.ttl >> 24), version: UInt8(rr.ttl >> 16 & 0xff),
                            dnssecOK: rr.ttl & 0x8000 != 0, options: options)
            } else {
                additional.append(rr)
            }
        }
        if r.offset != bytes.count { throw DNSError("\(bytes.count - r.offset) bytes after the last record") }
    }

    // MARK: encoding

    /// Wire bytes, names compressed. With `limit`, a message that does not fit keeps its
    /// header and question and sets TC (RFC 2181 9), as a server does over UDP.
    public func encode(limit: Int = 65535) -> [UInt8] {
        var w = WireWriter()
        encodeAll(into: &w)
        if w.bytes.count <= limit { return w.bytes }
        var short = self
        short.header.truncated = true
        short.answers = []
        short.authority = []
        short.additional = []
        var t = WireWriter()
        short.encodeAll(into: &t)
        return t.bytes
    }

    private func encodeAll(into w: inout WireWriter) {
        w.u16(header.id)
        var h = header
        h.rcode = UInt8(rcode & 0xf)
        w.u16(h.flags)
        w.u16(UInt16(questions.count))
        w.u16(UInt16(answers.count))
        w.u16(UInt16(authority.count))
        w.u16(UInt16(additional.count + (edns == nil ? 0 : 1)))
        for q in questions {
            w.name(q.name)
            w.u16(q.type.rawValue)
            w.u16(q.klass)
        }
        for rr in answers { w.record(rr) }
        for rr in authority { w.record(rr) }
        for rr in additional { w.record(rr) }
        if let e = edns { w.opt(e) }
    }
}

// MARK: - reader

struct WireReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func u8() throws(DNSError) -> UInt8 {
        guard offset < bytes.count else { throw DNSError("message ends early at byte \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() throws(DNSError) -> UInt16 {
        guard offset + 2 <= bytes.count else { throw DNSError("message ends early at byte \(offset)") }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func u32() throws(DNSError) -> UInt32 {
        UInt32(try u16()) << 16 | UInt32(try u16())
    }

    mutating func take(_ n: Int) throws(DNSError) -> [UInt8] {
        guard n >= 0, offset + n <= bytes.count else { throw DNSError("message ends early at byte \(offset)") }
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }

    /// A name, following compression pointers (each must point before the one before).
    mutating func name() throws(DNSError) -> DNSName {
        let (n, end) = try WireReader.name(in: bytes, at: offset)
        offset = end
        return n
    }

    static func name(in bytes: [UInt8], at start: Int) throws(DNSError) -> (DNSName, Int) {
        var labels: [[UInt8]] = []
        var pos = start
        var end: Int?
        var wire = 1
        var jumps = 0
        var lowest = start
        while true {
            guard pos < bytes.count else { throw DNSError("name runs past the end of the message") }
            let len = Int(bytes[pos])
            switch len & 0xc0 {
            case 0x00:
                if len == 0 {
                    return (DNSName(labels: labels), end ?? pos + 1)
                }
                guard pos + 1 + len <= bytes.count else { throw DNSError("label runs past the end of the message") }
                wire += 1 + len
                guard wire <= DNSName.maxWireLength else { throw DNSError("name longer than 255 bytes") }
                labels.append(Array(bytes[(pos + 1)...(pos + len)]))
                pos += 1 + len
            case 0xc0:
                guard pos + 1 < bytes.count else { throw DNSError("compression pointer runs past the end") }
                let target = (len & 0x3f) << 8 | Int(bytes[pos + 1])
                guard target < lowest else { throw DNSError("compression pointer does not point backwards") }
                jumps += 1
                guard jumps <= 64 else { throw DNSError("too many compression pointers") }
                if end == nil { end = pos + 2 }
                lowest = target
                pos = target
            default:
                throw DNSError("unknown label type 0x\(String(len & 0xc0, radix: 16))")
            }
        }
    }

    mutating func record() throws(DNSError) -> ResourceRecord {
        let owner = try name()
        let type = RRType(try u16())
        let klass = try u16()
        let ttl = try u32()
        let length = Int(try u16())
        guard offset + length <= bytes.count else { throw DNSError("record data runs past the end of the message") }
        let end = offset + length
        let data: RData
        switch type {
        case .a:
            guard length == 4 else { throw DNSError("A record with \(length) bytes of data") }
            data = .a(IPv4Address(try u32()))
        case .ns: data = .ns(try name())
        case .cname: data = .cname(try name())
        case .ptr: data = .ptr(try name())
        case .soa:
            data = .soa(mname: try name(), rname: try name(), serial: try u32(), refresh: try u32(), retry: try u32(),
                        expire: try u32(), minimum: try u32())
        case .srv:
            data = .srv(priority: try u16(), weight: try u16(), port: try u16(), target: try name())
        case .txt:
            var strings: [[UInt8]] = []
            while offset < end { strings.append(try take(Int(try u8()))) }
            data = .txt(strings)
        default:
            data = .raw(try take(length))
        }
        guard offset == end else { throw DNSError("\(type) record data has the wrong length") }
        return ResourceRecord(name: owner, type: type, klass: klass, ttl: ttl, data: data)
    }
}

// MARK: - writer

/// Encodes messages; names are compressed against the suffixes already written.
public struct WireWriter {
    public var bytes: [UInt8] = []
    /// Names written (lower-case wire bytes) and where each of their labels written in
    /// full starts: a suffix of a later name that equals one of them becomes a pointer.
    /// A message has few names, so a scan beats hashing every suffix.
    var written: [(key: [UInt8], starts: [(keyOffset: Int, at: Int)])] = []

    public init() { bytes.reserveCapacity(512) }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xff)) }
    mutating func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xffff)) }

    /// Where a name equal to key[from...] was written, or nil.
    func find(_ key: [UInt8], from: Int) -> Int? {
        let length = key.count - from
        for w in written {
            for s in w.starts where w.key.count - s.keyOffset == length {
                if w.key[s.keyOffset...].elementsEqual(key[from...]) { return s.at }
            }
        }
        return nil
    }

    mutating func name(_ name: DNSName, compress: Bool = true) {
        let key = name.key
        var starts: [(keyOffset: Int, at: Int)] = []
        var keyOffset = 0
        for label in name.labels {
            if compress, let at = find(key, from: keyOffset) {
                u16(0xc000 | UInt16(at))
                written.append((key, starts))
                return
            }
            if bytes.count < 0x4000 { starts.append((keyOffset, bytes.count)) }
            u8(UInt8(label.count))
            bytes.append(contentsOf: label)
            keyOffset += 1 + label.count
        }
        u8(0)
        if compress && !starts.isEmpty { written.append((key, starts)) }
    }

    public mutating func record(_ rr: ResourceRecord) {
        name(rr.name)
        u16(rr.type.rawValue)
        u16(rr.klass)
        u32(rr.ttl)
        let lengthAt = bytes.count
        u16(0)
        switch rr.data {
        case .a(let ip): u32(ip.value)
        case .ns(let n), .cname(let n), .ptr(let n): name(n)
        case .soa(let m, let r, let serial, let refresh, let retry, let expire, let minimum):
            name(m)
            name(r)
            for v in [serial, refresh, retry, expire, minimum] { u32(v) }
        case .txt(let strings):
            for s in strings {
                u8(UInt8(min(s.count, 255)))
                bytes.append(contentsOf: s.prefix(255))
            }
        case .srv(let priority, let weight, let port, let target):
            u16(priority)
            u16(weight)
            u16(port)
            name(target, compress: false) // RFC 2782: the target is not compressed
        case .raw(let data):
            bytes.append(contentsOf: data)
        }
        let length = bytes.count - lengthAt - 2
        bytes[lengthAt] = UInt8(length >> 8)
        bytes[lengthAt + 1] = UInt8(length & 0xff)
    }

    mutating func opt(_ e: EDNS) {
        u8(0)
        u16(RRType.opt.rawValue)
        u16(e.udpPayloadSize)
        u32(UInt32(e.extendedRCode) << 24 | UInt32(e.version) << 16 | (e.dnssecOK ? 0x8000 : 0))
        u16(UInt16(e.options.count))
        bytes.append(contentsOf: e.options)
    }
}
