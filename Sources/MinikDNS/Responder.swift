// From query bytes to response bytes. The zone's answers are encoded once, when the zone
// is loaded, for every name and type it holds (and a NODATA answer per name): a query
// for one of them costs a parse of its question, one hash lookup and a copy. The
// response carries the question exactly as asked (its letter case too, RFC 4343) and
// compresses every name against it. Anything else (pod names, reverse names, CNAME
// chains, ANY) is resolved by Zone.resolve and encoded on the spot.
//
// Protocol behaviour: a response packet is dropped; an opcode other than QUERY gets
// NOTIMP; anything that does not parse, or more or less than one question, gets FORMERR
// (or is dropped when not even the header is there); a class other than IN gets REFUSED;
// EDNS versions above 0 get BADVERS (RFC 6891 6.1.3); zone transfers are REFUSED. Over
// UDP a response that does not fit 512 bytes (or the client's EDNS size, at most
// `maxUDPSize`) is sent with TC set and no records, and the client retries over TCP.

public enum Transport: Sendable { case udp, tcp }

public enum Outcome: Equatable, Sendable {
    /// The response is in the output buffer.
    case reply
    /// Ask an upstream: the query is well formed and not the cluster's.
    case forward
    /// A cluster name whose CNAME leads out of the cluster (an ExternalName service): ask
    /// an upstream for the target and answer with the chain followed by what it says, as
    /// CoreDNS does, since stub resolvers do not follow a CNAME themselves.
    case chase(Chase)
    /// Say nothing (a response, or fewer than 12 bytes).
    case drop
}

public struct Chase: Equatable, Sendable {
    /// The client's query (ID, flags, question, EDNS).
    public var query: Message
    /// The CNAME records from the zone.
    public var chain: [ResourceRecord]
    /// The question to ask upstream: the last target, the client's type.
    public var target: Question

    /// The upstream's question as a query (RD set, EDNS if the client used it).
    public func upstreamQuery(id: UInt16) -> [UInt8] {
        var m = Message()
        m.header.id = id
        m.header.recursionDesired = true
        m.questions = [target]
        m.edns = query.edns.map { _ in EDNS(udpPayloadSize: UInt16(Responder.maxUDPSize)) }
        return m.encode()
    }

    /// The client's answer: the chain, then the upstream's records (or SERVFAIL when there
    /// is no usable reply), at most `limit` bytes.
    public func answer(upstreamReply: [UInt8]?, limit: Int) -> [UInt8] {
        var m = Message()
        m.header = Header(id: query.header.id, flags: 0x8000 | 0x0080 | (query.header.flags & 0x0100))
        m.questions = query.questions
        m.edns = query.edns.map { _ in EDNS(udpPayloadSize: UInt16(Responder.maxUDPSize)) }
        if let bytes = upstreamReply, let reply = try? Message(decoding: bytes), reply.questions.first == target {
            m.header.rcode = reply.header.rcode
            m.header.truncated = reply.header.truncated // the client retries over TCP
            m.answers = chain + reply.answers
            m.authority = reply.answers.isEmpty ? reply.authority : []
        } else {
            m.header.rcode = RCode.servFail.rawValue
        }
        return m.encode(limit: limit)
    }
}

public final class Responder: Sendable {
    public let zone: Zone
    /// The largest UDP response sent, whatever a client advertises (DNS flag day 2020).
    public static let maxUDPSize = 1232

    struct Compiled: Sendable {
        var flags: UInt16 // AA and RCODE; QR, RD and RA are added per query
        var an: UInt16, ns: UInt16, ar: UInt16
        var body: [UInt8]
    }

    struct CompiledName: Sendable {
        var types: [(UInt16, Compiled)]
        /// NODATA; nil for names in the cluster zone, whose NODATA is written on the spot
        /// (the zone's SOA pointing into the question), which halves the encoding work.
        var nodata: Compiled?
    }

    let compiled: [[UInt8]: CompiledName]
    let domainKey: [UInt8]
    let domainLabels: Int
    let podZoneLabels: Int
    let recursion: Bool

    public init(zone: Zone) {
        self.zone = zone
        domainKey = zone.domain.key
        domainLabels = zone.domain.labels.count
        podZoneLabels = domainLabels + 1
        recursion = !zone.upstreams.isEmpty
        var out: [[UInt8]: CompiledName] = [:]
        out.reserveCapacity(zone.records.count)
        for (key, rrs) in zone.records where !rrs.contains(where: { $0.type == .cname }) {
            let name = rrs[0].name
            var seen: [RRType] = []
            for rr in rrs where !seen.contains(rr.type) { seen.append(rr.type) }
            let types = seen.compactMap { t in Responder.compile(zone, name, t).map { (t.rawValue, $0) } }
            let inZone = zone.isInZone(name)
            let nodata = inZone ? nil : Responder.compile(zone, name, RRType(65280))
            if !inZone && nodata == nil { continue }
            out[key] = CompiledName(types: types, nodata: nodata)
        }
        compiled = out
    }

    static func compile(_ zone: Zone, _ name: DNSName, _ type: RRType) -> Compiled? {
        guard case .answer(let rcode, let an, let ns, let ar) = zone.resolve(Question(name: name, type: type)) else { return nil }
        var m = Message()
        m.questions = [Question(name: name, type: type)]
        m.answers = an
        m.authority = ns
        m.additional = ar
        let bytes = m.encode()
        let bodyStart = 12 + name.wireLength + 4
        return Compiled(flags: 0x0400 | UInt16(rcode.rawValue), an: UInt16(an.count), ns: UInt16(ns.count), ar: UInt16(ar.count),
                        body: Array(bytes[bodyStart...]))
    }

    /// What a parsed query holds that the answer needs.
    struct Query {
        var id: UInt16 = 0
        var flags: UInt16 = 0
        var questionEnd = 12
        var qtype: UInt16 = 0
        var qclass: UInt16 = 0
        var edns = false
        var ednsVersion: UInt8 = 0
        var udpSize = 512
        /// Offsets of the question name's labels (in the query), for the zone's suffix.
        var labelOffsets: [Int] = []
    }

    /// Answers `query` into `out` (cleared first). `key` is scratch space the caller
    /// keeps between calls (the lower-case question name), to spare an allocation.
    public func respond(to query: UnsafeRawBufferPointer, transport: Transport, out: inout [UInt8], key: inout [UInt8]) -> Outcome {
        out.removeAll(keepingCapacity: true)
        key.removeAll(keepingCapacity: true)
        let n = query.count
        guard n >= 12 else { return .drop }
        var q = Query()
        q.id = UInt16(query[0]) << 8 | UInt16(query[1])
        q.flags = UInt16(query[2]) << 8 | UInt16(query[3])
        if q.flags & 0x8000 != 0 { return .drop }
        func u16(_ at: Int) -> UInt16 { UInt16(query[at]) << 8 | UInt16(query[at + 1]) }
        let qd = u16(4), an = u16(6), ns = u16(8), ar = u16(10)
        if (q.flags >> 11) & 0xf != 0 { return headerOnly(q, rcode: 4, &out) }
        guard qd == 1 else { return headerOnly(q, rcode: 1, &out) }
        // The question: labels without compression, at most 255 bytes.
        var p = 12
        while true {
            guard p < n else { return headerOnly(q, rcode: 1, &out) }
            let len = Int(query[p])
            if len == 0 { key.append(0); p += 1; break }
            guard len <= 63, p + 1 + len <= n, p - 12 + len + 2 <= 255 else { return headerOnly(q, rcode: 1, &out) }
            q.labelOffsets.append(p)
            key.append(UInt8(len))
            for i in (p + 1)...(p + len) { key.append(lowerASCII(query[i])) }
            p += 1 + len
        }
        guard p + 4 <= n else { return headerOnly(q, rcode: 1, &out) }
        q.qtype = u16(p)
        q.qclass = u16(p + 2)
        p += 4
        q.questionEnd = p
        // The other sections: skipped, but for the OPT record.
        for section in 0..<3 {
            let count = [an, ns, ar][section]
            for _ in 0..<count {
                guard let afterName = Responder.skipName(query, p) else { return headerOnly(q, rcode: 1, &out) }
                p = afterName
                guard p + 10 <= n else { return headerOnly(q, rcode: 1, &out) }
                let type = u16(p), klass = u16(p + 2)
                let rdlen = Int(u16(p + 8))
                guard p + 10 + rdlen <= n else { return headerOnly(q, rcode: 1, &out) }
                if section == 2 && type == RRType.opt.rawValue {
                    if q.edns { return headerOnly(q, rcode: 1, &out) }
                    q.edns = true
                    q.ednsVersion = query[p + 5]
                    q.udpSize = min(max(Int(klass), 512), Responder.maxUDPSize)
                }
                p += 10 + rdlen
            }
        }
        if p != n { return headerOnly(q, rcode: 1, &out) }
        if q.edns && q.ednsVersion != 0 { return withQuestion(q, query, rcode: 16, &out) } // BADVERS
        if q.qclass != DNSClass.in && q.qclass != DNSClass.any { return withQuestion(q, query, rcode: 5, &out) }
        if q.qtype == RRType.axfr.rawValue || q.qtype == RRType.ixfr.rawValue { return withQuestion(q, query, rcode: 5, &out) }
        let limit = transport == .tcp ? 65535 : q.udpSize

        // Fast: names and types the zone holds.
        if q.qtype != RRType.any.rawValue, let entry = compiled[key] {
            if let c = entry.types.first(where: { $0.0 == q.qtype })?.1 ?? entry.nodata {
                return write(q, query, c, limit: limit, &out)
            }
            // NODATA in the cluster zone: its apex is the question's last labels.
            return negative(q, query, rcode: 0, apexOffset: q.labelOffsets[q.labelOffsets.count - domainLabels], limit: limit, &out)
        }
        // Fast: names in the zone that do not exist (and empty non-terminals).
        let labels = q.labelOffsets.count
        if labels >= domainLabels, key.count >= domainKey.count, key.suffix(domainKey.count).elementsEqual(domainKey) {
            let apexOffset = labels == domainLabels ? 12 : q.labelOffsets[labels - domainLabels]
            // The suffix matched as bytes; it is the zone only if it starts on a label.
            if query[apexOffset] == domainKey[0] && q.questionEnd - 4 - apexOffset == domainKey.count {
                // a-b-c-d.<ns>.pod.<zone>: the third label is "pod".
                let third = labels == podZoneLabels + 2 ? q.labelOffsets[2] : 0
                let mayBePod = third > 0 && query[third] == 3 && lowerASCII(query[third + 1]) == 112
                    && lowerASCII(query[third + 2]) == 111 && lowerASCII(query[third + 3]) == 100
                if !mayBePod && !zone.existing.contains(key) && zone.records[key] == nil {
                    return negative(q, query, rcode: 3, apexOffset: apexOffset, limit: limit, &out)
                }
            }
        }
        // Everything else, resolved and encoded now.
        var labelsList: [[UInt8]] = []
        for off in q.labelOffsets {
            let len = Int(query[off])
            labelsList.append(Array(query[(off + 1)...(off + len)]))
        }
        let question = Question(name: DNSName(labels: labelsList), type: RRType(q.qtype), klass: q.qclass)
        switch zone.resolve(question) {
        case .forward:
            return .forward
        case .refused:
            return withQuestion(q, query, rcode: 5, &out)
        case .answer(let rcode, let an, let ns, let ar):
            if rcode == .noError, ns.isEmpty, !zone.upstreams.isEmpty, q.qtype != RRType.cname.rawValue,
               case .cname(let target)? = an.last?.data, !zone.isAuthoritative(for: target) {
                var query = Message()
                query.header = Header(id: q.id, flags: q.flags)
                query.questions = [question]
                if q.edns { query.edns = EDNS(udpPayloadSize: UInt16(q.udpSize)) }
                return .chase(Chase(query: query, chain: an, target: Question(name: target, type: question.type)))
            }
            var m = Message()
            m.header = Header(id: q.id, flags: responseFlags(q, aa: true, rcode: rcode.rawValue))
            m.questions = [question]
            m.answers = an
            m.authority = ns
            m.additional = ar
            if q.edns { m.edns = EDNS(udpPayloadSize: UInt16(Responder.maxUDPSize)) }
            out = m.encode(limit: limit)
            return .reply
        }
    }

    /// The end of a (possibly compressed) name at `p`, or nil.
    static func skipName(_ b: UnsafeRawBufferPointer, _ start: Int) -> Int? {
        var p = start
        var total = 0
        while p < b.count {
            let len = Int(b[p])
            if len == 0 { return p + 1 }
            if len & 0xc0 == 0xc0 { return p + 2 <= b.count ? p + 2 : nil }
            if len & 0xc0 != 0 { return nil }
            total += len + 1
            if total > 255 { return nil }
            p += 1 + len
        }
        return nil
    }

    func responseFlags(_ q: Query, aa: Bool, rcode: UInt8) -> UInt16 {
        var f: UInt16 = 0x8000 | (q.flags & 0x0100) | UInt16(rcode & 0xf)
        if aa { f |= 0x0400 }
        if recursion { f |= 0x0080 }
        return f
    }

    private func header(_ q: Query, flags: UInt16, qd: UInt16, an: UInt16, ns: UInt16, ar: UInt16, _ out: inout [UInt8]) {
        for v in [q.id, flags, qd, an, ns, ar] {
            out.append(UInt8(v >> 8))
            out.append(UInt8(v & 0xff))
        }
    }

    private func opt(_ rcode: Int, _ out: inout [UInt8]) {
        let size = UInt16(Responder.maxUDPSize)
        out += [0, 0, 41, UInt8(size >> 8), UInt8(size & 0xff), UInt8(rcode >> 4), 0, 0, 0, 0, 0]
    }

    private func headerOnly(_ q: Query, rcode: UInt8, _ out: inout [UInt8]) -> Outcome {
        header(q, flags: 0x8000 | (q.flags & 0x7900) | UInt16(rcode), qd: 0, an: 0, ns: 0, ar: 0, &out)
        return .reply
    }

    private func withQuestion(_ q: Query, _ query: UnsafeRawBufferPointer, rcode: Int, _ out: inout [UInt8]) -> Outcome {
        header(q, flags: responseFlags(q, aa: false, rcode: UInt8(rcode & 0xf)), qd: 1, an: 0, ns: 0, ar: q.edns ? 1 : 0, &out)
        out.append(contentsOf: query[12..<q.questionEnd])
        if q.edns { opt(rcode, &out) }
        return .reply
    }

    private func write(_ q: Query, _ query: UnsafeRawBufferPointer, _ c: Compiled, limit: Int, _ out: inout [UInt8]) -> Outcome {
        let size = q.questionEnd + c.body.count + (q.edns ? 11 : 0)
        if size > limit { return truncated(q, query, rcode: UInt8(c.flags & 0xf), &out) }
        let flags = responseFlags(q, aa: true, rcode: UInt8(c.flags & 0xf))
        header(q, flags: flags, qd: 1, an: c.an, ns: c.ns, ar: c.ar + (q.edns ? 1 : 0), &out)
        out.append(contentsOf: query[12..<q.questionEnd])
        out.append(contentsOf: c.body)
        if q.edns { opt(0, &out) }
        return .reply
    }

    private func truncated(_ q: Query, _ query: UnsafeRawBufferPointer, rcode: UInt8, _ out: inout [UInt8]) -> Outcome {
        out.removeAll(keepingCapacity: true)
        header(q, flags: responseFlags(q, aa: true, rcode: rcode) | 0x0200, qd: 1, an: 0, ns: 0, ar: q.edns ? 1 : 0, &out)
        out.append(contentsOf: query[12..<q.questionEnd])
        if q.edns { opt(0, &out) }
        return .reply
    }

    /// NXDOMAIN or NODATA with the zone's SOA, its names pointing into the question.
    private func negative(_ q: Query, _ query: UnsafeRawBufferPointer, rcode: UInt8, apexOffset: Int, limit: Int, _ out: inout [UInt8]) -> Outcome {
        header(q, flags: responseFlags(q, aa: true, rcode: rcode), qd: 1, an: 0, ns: 1, ar: q.edns ? 1 : 0, &out)
        out.append(contentsOf: query[12..<q.questionEnd])
        let ptr0 = UInt8(0xc0 | (apexOffset >> 8)), ptr1 = UInt8(apexOffset & 0xff)
        let ttl = zone.ttl
        out += [ptr0, ptr1, 0, 6, 0, 1, UInt8(ttl >> 24), UInt8(ttl >> 16 & 0xff), UInt8(ttl >> 8 & 0xff), UInt8(ttl & 0xff)]
        let rdata: [UInt8] = [2, 110, 115, 3, 100, 110, 115, ptr0, ptr1, 10] + Array("hostmaster".utf8) + [ptr0, ptr1]
        let serial = zone.serial
        let numbers: [UInt32] = [serial, 7200, 1800, 86400, ttl]
        let rdlen = rdata.count + 20
        out += [UInt8(rdlen >> 8), UInt8(rdlen & 0xff)]
        out += rdata
        for v in numbers { out += [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
        if q.edns { opt(0, &out) }
        if out.count > limit { return truncated(q, query, rcode: rcode, &out) }
        return .reply
    }
}
