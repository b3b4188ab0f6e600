// The DNS message codec (MinikDNS Wire.swift): round trips of every record kind and
// EDNS, name compression byte for byte, names, truncation, and every kind of malformed
// packet rejected with a DNSError. Then a seeded fuzz of the codec and the responder
// with random packets and mutated valid ones (DNSFixture is in DNSZoneTests.swift).
@testable import MinikDNS
import Testing

private typealias F = DNSFixture

private func lbl(_ s: String) -> [UInt8] { [UInt8(s.utf8.count)] + Array(s.utf8) }
private func wire(_ labels: String...) -> [UInt8] { labels.flatMap(lbl) + [0] }
private func u16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
private func hdr(id: Int = 0x1234, flags: Int = 0x0100, qd: Int = 1, an: Int = 0, ns: Int = 0, ar: Int = 0) -> [UInt8] {
    u16(id) + u16(flags) + u16(qd) + u16(an) + u16(ns) + u16(ar)
}
/// TYPE A CLASS IN, after a question's name.
private let typeAIn: [UInt8] = [0, 1, 0, 1]
/// TYPE CLASS TTL(5) RDLENGTH of a record, after its name.
private func rrHead(_ type: Int, rdlength: Int, klass: Int = 1) -> [UInt8] { u16(type) + u16(klass) + [0, 0, 0, 5] + u16(rdlength) }

/// Every kind of record, EDNS with options, names in mixed case.
private func everyKindMessage() -> Message {
    var m = Message()
    m.header = Header(id: 0xface, flags: 0x8580) // QR AA RD RA
    m.questions = [Question(name: F.name("Web.Default.svc.Cluster.Local"), type: .any)]
    let owner = F.name("web.default.svc.cluster.local")
    m.answers = [
        ResourceRecord(name: owner, type: .a, ttl: 5, data: .a(F.ip("10.96.0.10"))),
        ResourceRecord(name: F.name("cluster.local"), type: .ns, ttl: 3600, data: .ns(F.name("NS.dns.cluster.local"))),
        ResourceRecord(name: F.name("alias.default.svc.cluster.local"), type: .cname, ttl: 5, data: .cname(owner)),
        ResourceRecord(name: F.name("10.0.96.10.in-addr.arpa"), type: .ptr, ttl: 5, data: .ptr(owner)),
        ResourceRecord(name: F.name("dns-version.cluster.local"), type: .txt, ttl: 5,
                       data: .txt([Array("1.1.0".utf8), [], [UInt8](repeating: 0x7a, count: 255), [0, 0xff, 0x22]])),
        ResourceRecord(name: F.name("_http._tcp.web.default.svc.cluster.local"), type: .srv, ttl: 5,
                       data: .srv(priority: 1, weight: 2, port: 8080, target: owner)),
        ResourceRecord(name: owner, type: .aaaa, ttl: 5, data: .raw([0xfd, 0] + [UInt8](repeating: 0, count: 13) + [1])),
        ResourceRecord(name: owner, type: RRType(99), klass: 3, ttl: 0xffff_ffff, data: .raw([1, 2, 3])),
        ResourceRecord(name: .root, type: RRType(10), ttl: 0, data: .raw([])),
        ResourceRecord(name: F.name("empty.txt"), type: .txt, ttl: 1, data: .txt([])),
    ]
    m.authority = [ResourceRecord(name: F.name("cluster.local"), type: .soa, ttl: 5, data: .soa(
        mname: F.name("ns.dns.cluster.local"), rname: F.name("hostmaster.cluster.local"), serial: 0xdead_beef, refresh: 7200,
        retry: 1800, expire: 86400, minimum: 5))]
    m.additional = [ResourceRecord(name: F.name("db-0.db.default.svc.cluster.local"), type: .a, ttl: 5, data: .a(F.ip("10.244.1.5")))]
    m.edns = EDNS(udpPayloadSize: 4096, extendedRCode: 1, version: 0, dnssecOK: true, options: [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])
    return m
}

/// Every name in a message with its exact bytes, in order.
private func exactNames(_ m: Message) -> [[[UInt8]]] {
    var out = m.questions.map(\.name.labels)
    for rr in m.answers + m.authority + m.additional {
        out.append(rr.name.labels)
        switch rr.data {
        case .ns(let n), .cname(let n), .ptr(let n): out.append(n.labels)
        case .soa(let a, let b, _, _, _, _, _): out += [a.labels, b.labels]
        case .srv(_, _, _, let t): out.append(t.labels)
        default: break
        }
    }
    return out
}

// MARK: - round trips

@Suite("DNSWire: codec")
struct DNSWireCodecTests {
    @Test func everyRecordKindRoundTrips() throws {
        let m = everyKindMessage()
        let bytes = m.encode()
        let back = try Message(decoding: bytes)
        #expect(back == m)
        // The question's letter case is kept; a later name compressed against it takes
        // its case (compression ignores case).
        #expect(back.questions[0].name.labels == m.questions[0].name.labels)
        #expect(back.answers[0].name.labels == m.questions[0].name.labels)
        #expect(back.rcode == 16 && back.header.rcode == 0 && back.edns?.extendedRCode == 1)
        #expect(back.edns?.dnssecOK == true && back.edns?.udpPayloadSize == 4096)
        #expect(back.edns?.options == [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])
        #expect(back.encode() == bytes)
        // Counts: OPT is counted in the additional section but kept apart.
        #expect(bytes[4...11] == [0, 1, 0, 10, 0, 1, 0, 2])
        #expect(back.additional.count == 1)
        // Each record alone too, in each section.
        for rr in m.answers + m.authority {
            for section in 0..<3 {
                var one = Message()
                one.header.id = 1
                if section == 0 { one.answers = [rr] } else if section == 1 { one.authority = [rr] } else { one.additional = [rr] }
                let b = try Message(decoding: one.encode())
                #expect(b == one, "\(rr.type) in section \(section)")
                #expect(exactNames(b) == exactNames(one))
            }
        }
    }

    @Test func ednsFields() throws {
        for e in [EDNS(udpPayloadSize: 512), EDNS(udpPayloadSize: 1232, dnssecOK: true), EDNS(udpPayloadSize: 65535, extendedRCode: 0xff, version: 0xff),
                  EDNS(udpPayloadSize: 0, options: [0, 8, 0, 4, 0, 1, 24, 0])] {
            var m = Message()
            m.questions = [Question(name: F.name("a.b"), type: .a)]
            m.edns = e
            let bytes = m.encode()
            // The OPT record: root name, type 41, class = size, TTL = ercode version DO.
            let opt = Array(bytes.suffix(11 + e.options.count))
            #expect(opt[0] == 0 && opt[1...2] == [0, 41] && opt[3...4] == [UInt8(e.udpPayloadSize >> 8), UInt8(e.udpPayloadSize & 0xff)])
            #expect(opt[5...8] == [e.extendedRCode, e.version, e.dnssecOK ? 0x80 : 0, 0])
            #expect(try Message(decoding: bytes).edns == e)
        }
        var none = Message()
        none.questions = [Question(name: F.name("a.b"), type: .a)]
        #expect(try Message(decoding: none.encode()).edns == nil)
    }

    @Test func headerFlags() {
        for f in 0...0xffff {
            let h = Header(id: UInt16(f ^ 0x5a5a), flags: UInt16(f))
            #expect(h.flags == UInt16(f) & ~0x0040, "\(f)") // Z is not kept
            if h.flags != UInt16(f) & ~0x0040 { break }
        }
        var h = Header()
        h.opcode = 2
        h.rcode = 5
        h.response = true
        h.truncated = true
        #expect(h.flags == 0x8000 | 2 << 11 | 0x0200 | 5)
    }

    @Test func typesAndAddresses() {
        #expect(RRType(name: "SRV") == .srv && RRType(name: "AAAA") == .aaaa && RRType(name: "srv") == nil)
        #expect(RRType.ptr.description == "PTR" && RRType(99).description == "TYPE99")
        #expect(F.ip("10.96.0.1").value == 0x0a60_0001 && F.ip("10.96.0.1").description == "10.96.0.1")
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.1.1.1", "1..2.3", "a.b.c.d", "1.2.3.4 ", "-1.2.3.4", "+1.2.3.4"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
        #expect(F.ip("10.96.0.1").reverseName == F.name("1.0.96.10.in-addr.arpa"))
        let r = IPv4CIDR("10.97.3.4/12")!
        #expect(r.network == F.ip("10.96.0.0") && r.description == "10.96.0.0/12" && r.reverseZone == F.name("10.in-addr.arpa"))
        #expect(r.contains(F.ip("10.111.255.255")) && !r.contains(F.ip("10.112.0.0")) && !r.contains(F.ip("10.95.255.255")))
        #expect(IPv4CIDR("10.244.0.0/16")!.reverseZone == F.name("244.10.in-addr.arpa"))
        #expect(IPv4CIDR("0.0.0.0/0")!.contains(F.ip("255.255.255.255")) && IPv4CIDR("1.2.3.4/32")!.contains(F.ip("1.2.3.4")))
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0/8", "10.0.0.0/8/8"] { #expect(IPv4CIDR(bad) == nil, "\(bad)") }
    }
}

// MARK: - names

@Suite("DNSWire: names")
struct DNSWireNameTests {
    @Test func equalityAndHashIgnoreCase() throws {
        let a = try DNSName("WEB.Default.svc"), b = try DNSName("web.default.SVC.")
        #expect(a == b && a.hashValue == b.hashValue)
        #expect(Set([a, b]).count == 1)
        #expect([b: 1][a] == 1)
        #expect(a.key == b.key && a.key == wire("web", "default", "svc"))
        #expect(a.labels != b.labels) // case kept
        #expect(a.description == "WEB.Default.svc")
        #expect(try DNSName("web.default") != DNSName("web.default.svc"))
        #expect(try DNSName("a-b") != DNSName("a_b"))
        // Only ASCII letters fold: 0xC1 and 0xE1 differ, '@' (0x40) and '`' (0x60) differ.
        #expect(DNSName(labels: [[0xc1]]) != DNSName(labels: [[0xe1]]))
        #expect(DNSName(labels: [[0x40]]) != DNSName(labels: [[0x60]]))
        #expect(DNSName(labels: [[0x5b]]) != DNSName(labels: [[0x7b]]))
        #expect(try DNSName("a.B.c").isSubdomain(of: DNSName("b.C")) && DNSName("b.c").isSubdomain(of: .root))
        #expect(try !DNSName("ab.c").isSubdomain(of: DNSName("b.c")))
        #expect(try DNSName("a.b.c").dropping(1) == DNSName("b.c") && DNSName("b.c").prepending("A") == DNSName("a.b.c"))
    }

    @Test func fromText() throws {
        #expect(try DNSName("") == .root && DNSName(".") == .root && DNSName.root.description == ".")
        #expect(try DNSName("a.").labels == [[0x61]])
        #expect(try DNSName(String(repeating: "x", count: 63)).wireLength == 65)
        let longest = [63, 63, 63, 61].map { String(repeating: "y", count: $0) }.joined(separator: ".")
        #expect(try DNSName(longest).wireLength == 255)
        for (bad, why) in [("a..b", "empty label"), (".a", "empty label"), ("..", "empty label"), ("a.b..", "empty label"),
                           (String(repeating: "x", count: 64), "63 bytes"), (longest + "y", "255 bytes"),
                           ([63, 63, 63, 62].map { String(repeating: "z", count: $0) }.joined(separator: "."), "255 bytes"),
                           (Array(repeating: "a", count: 128).joined(separator: "."), "255 bytes")] {
            #expect(throws: DNSError.self, "\(bad)") { try DNSName(bad) }
            do { _ = try DNSName(bad) } catch { #expect(error.message.contains(why), "\(bad): \(error.message)") }
        }
    }

    @Test func descriptionEscapes() {
        #expect(DNSName(labels: [Array("a.b".utf8), Array("c d".utf8), [0x5c], Array("_x-*".utf8)]).description == "a\\.b.c\\032d.\\\\._x-*")
        #expect(DNSName(labels: [[0], [0xff]]).description == "\\000.\\255")
    }
}

// MARK: - compression

@Suite("DNSWire: compression")
struct DNSWireCompressionTests {
    @Test func suffixesBecomePointersExactly() throws {
        var m = Message()
        m.header = Header(id: 0xbeef, flags: 0x8400)
        m.questions = [Question(name: F.name("web.svc.local"), type: .a)]
        m.answers = [
            ResourceRecord(name: F.name("web.svc.local"), type: .a, ttl: 5, data: .a(F.ip("1.2.3.4"))),
            ResourceRecord(name: F.name("_http._tcp.web.svc.local"), type: .srv, ttl: 5,
                           data: .srv(priority: 0, weight: 100, port: 80, target: F.name("web.svc.local"))),
            ResourceRecord(name: F.name("alias.SVC.local"), type: .cname, ttl: 5, data: .cname(F.name("WEB.svc.local"))),
            ResourceRecord(name: F.name("x._tcp.web.svc.local"), type: .ptr, ttl: 5, data: .ptr(F.name("_http._tcp.web.svc.local"))),
        ]
        var want = hdr(id: 0xbeef, flags: 0x8400, qd: 1, an: 4)
        want += wire("web", "svc", "local") + typeAIn // web@12 svc@16 local@20
        want += [0xc0, 12] + rrHead(1, rdlength: 4) + [1, 2, 3, 4] // @31
        #expect(want.count == 47)
        // @47: _http@47 _tcp@53; the target is written in full (RFC 2782).
        want += lbl("_http") + lbl("_tcp") + [0xc0, 12] + rrHead(33, rdlength: 21) + [0, 0, 0, 100, 0, 80] + wire("web", "svc", "local")
        // Suffixes match whatever their case.
        want += lbl("alias") + [0xc0, 16] + rrHead(5, rdlength: 2) + [0xc0, 12]
        want += lbl("x") + [0xc0, 53] + rrHead(12, rdlength: 2) + [0xc0, 47]
        let bytes = m.encode()
        #expect(bytes == want)
        let back = try Message(decoding: bytes)
        #expect(back == m)
        // A pointer gives the case of what it points at.
        #expect(back.answers[2].name.labels == [Array("alias".utf8), Array("svc".utf8), Array("local".utf8)])
    }

    @Test func decodesPointersEverywhere() throws {
        // Hand-written: SOA names, a PTR target and owners through pointers (and a
        // pointer to a pointer).
        var b = hdr(id: 1, flags: 0x8000, qd: 1, an: 2, ns: 1)
        b += wire("nope", "cluster", "local") + typeAIn // nope@12 cluster@17 local@25
        b += lbl("a") + [0xc0, 17] + rrHead(12, rdlength: 4) + lbl("b") + [0xc0, 36] // a@36 (a.cluster.local)
        let p = b.count
        b += [0xc0, 36] + rrHead(5, rdlength: 2) + [0xc0, UInt8(p)] // owner a.cluster.local, CNAME -> the pointer at p
        b += [0xc0, 17] + rrHead(6, rdlength: 3 + 2 + 3 + 2 + 20) + lbl("ns") + [0xc0, 17] + lbl("hm") + [0xc0, 25] + [UInt8](repeating: 0, count: 20)
        let m = try Message(decoding: b)
        #expect(m.questions.first?.name == F.name("nope.cluster.local"))
        #expect(m.answers == [ResourceRecord(name: F.name("a.cluster.local"), type: .ptr, ttl: 5, data: .ptr(F.name("b.a.cluster.local"))),
                              ResourceRecord(name: F.name("a.cluster.local"), type: .cname, ttl: 5, data: .cname(F.name("a.cluster.local")))])
        #expect(m.authority == [ResourceRecord(name: F.name("cluster.local"), type: .soa, ttl: 5, data: .soa(
            mname: F.name("ns.cluster.local"), rname: F.name("hm.local"), serial: 0, refresh: 0, retry: 0, expire: 0, minimum: 0))])
    }

    @Test func noPointersPast16K() throws {
        // Offsets from 0x4000 on cannot be pointed at: names there are written in full
        // and never become pointer targets.
        var m = Message()
        m.questions = [Question(name: F.name("big.test"), type: .txt)]
        m.answers = [ResourceRecord(name: F.name("big.test"), type: .txt, ttl: 1,
                                    data: .txt(Array(repeating: [UInt8](repeating: 0x41, count: 255), count: 70)))]
        for _ in 0..<3 {
            m.answers.append(ResourceRecord(name: F.name("late.zz"), type: .cname, ttl: 1, data: .cname(F.name("other.late.zz"))))
        }
        m.answers.append(ResourceRecord(name: F.name("x.big.test"), type: .a, ttl: 1, data: .a(IPv4Address(1))))
        let bytes = m.encode()
        #expect(bytes.count > 0x4000)
        #expect(try Message(decoding: bytes) == m)
        // The three late.zz records are written in full, owner and target alike.
        let tail = Array(bytes[0x4000...])
        let fullLate = wire("late", "zz")
        var count = 0
        for i in 0..<(tail.count - fullLate.count) where Array(tail[i..<(i + fullLate.count)]) == fullLate { count += 1 }
        #expect(count == 6)
        // x.big.test still points at the question.
        #expect(Array(bytes.suffix(18).prefix(4)) == lbl("x") + [0xc0, 12])
    }

    @Test func truncationKeepsTheQuestionAndEDNS() throws {
        var m = Message()
        m.header.id = 77
        m.header.response = true
        m.questions = [Question(name: F.name("big.default.svc.cluster.local"), type: .a)]
        m.answers = (1...100).map { ResourceRecord(name: F.name("big.default.svc.cluster.local"), type: .a, ttl: 5, data: .a(IPv4Address(UInt32($0)))) }
        m.authority = [F.soa()]
        m.additional = [F.rr("x.cluster.local", .a, .a(IPv4Address(1)))]
        m.edns = EDNS(udpPayloadSize: 1232)
        let full = m.encode()
        #expect(full.count > 1600)
        #expect(m.encode(limit: full.count) == full)
        for limit in [full.count - 1, 1232, 512, 0] {
            let short = m.encode(limit: limit)
            let t = try Message(decoding: short)
            #expect(t.header.truncated && t.header.id == 77 && t.header.response)
            #expect(t.questions == m.questions && t.edns == m.edns)
            #expect(t.answers.isEmpty && t.authority.isEmpty && t.additional.isEmpty)
            #expect(short.count == 12 + 35 + 11)
        }
    }
}

// MARK: - malformed

@Suite("DNSWire: malformed packets")
struct DNSWireMalformedTests {
    /// Rejected with a DNSError saying `why`, and the responder survives it.
    func rejects(_ bytes: [UInt8], _ why: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let m = try Message(decoding: bytes)
            Issue.record("accepted (\(why)): \(m)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.message.contains(why), "\(error.message)", sourceLocation: sourceLocation)
        }
        for t in [Transport.udp, .tcp] {
            let (outcome, out) = F.ask(F.responder, bytes, t)
            if outcome == .reply { #expect(out.count >= 12 && (try? Message(decoding: out)) != nil, sourceLocation: sourceLocation) }
        }
    }

    @Test func truncatedAnywhere() {
        rejects([], "ends early")
        rejects([0x12, 0x34, 0x01], "ends early")
        rejects(Array(hdr().dropLast()), "ends early")
        rejects(hdr(qd: 0, an: 5), "name runs past the end")
        // Every prefix of a whole message.
        let full = everyKindMessage().encode()
        for n in 0..<full.count {
            #expect(throws: DNSError.self, "\(n) bytes") { try Message(decoding: Array(full.prefix(n))) }
        }
    }

    @Test func namesRunningPastTheEnd() {
        rejects(hdr() + [5, 0x61, 0x62], "label runs past the end")
        rejects(hdr() + [1, 0x61], "name runs past the end")
        rejects(hdr() + [0xc0], "compression pointer runs past the end")
        rejects(hdr(qd: 0, an: 1) + [3, 0x61, 0x62, 0x63] + [0, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 1, 2], "record data runs past the end")
    }

    @Test func pointersMustPointBackwards() throws {
        // Forward, to itself, to its own earlier label, and a loop through a forward pointer.
        rejects(hdr(qd: 2) + [0xc0, 18] + typeAIn + wire("a") + typeAIn, "does not point backwards")
        rejects(hdr() + [0xc0, 12] + typeAIn, "does not point backwards")
        rejects(hdr() + lbl("a") + [0xc0, 12] + typeAIn, "does not point backwards")
        rejects(hdr() + lbl("a") + [0xc0, 14] + typeAIn, "does not point backwards")
        let loop = hdr(qd: 2) + lbl("a") + [0xc0, 20] + typeAIn + lbl("b") + [0xc0, 12] + typeAIn
        rejects(loop, "does not point backwards")
        // Entered through a backward pointer, the loop is still caught.
        #expect(throws: DNSError.self) { try WireReader.name(in: loop, at: 20) }
        // A pointer into the header is backwards: it reads whatever is there.
        #expect(try Message(decoding: hdr() + [0xc0, 7] + typeAIn).questions.first?.name == .root) // ANCOUNT's low byte, 0
        // The same in record data and owners.
        rejects(hdr(qd: 0, an: 1) + [0xc0, 12] + rrHead(1, rdlength: 4) + [1, 2, 3, 4], "does not point backwards")
        rejects(hdr(qd: 0, an: 1) + [0] + rrHead(5, rdlength: 2) + [0xc0, 23], "does not point backwards")
    }

    @Test func atMost64Jumps() throws {
        // Question k points at question k-1, which points at k-2...: the last of 65
        // questions takes 64 jumps, of 66, 65.
        func chain(_ questions: Int) -> [UInt8] {
            var b = hdr(qd: questions) + wire("a") + typeAIn
            var previous = 12
            for _ in 1..<questions {
                let here = b.count
                b += [0xc0 | UInt8(previous >> 8), UInt8(previous & 0xff)] + typeAIn
                previous = here
            }
            return b
        }
        let ok = try Message(decoding: chain(65))
        #expect(ok.questions.count == 65 && ok.questions.allSatisfy { $0.name == F.name("a") })
        rejects(chain(66), "too many compression pointers")
    }

    @Test func namesOver255Bytes() throws {
        let l63 = [UInt8](repeating: 0x61, count: 63)
        let three: [UInt8] = [63] + l63 + [63] + l63 + [63] + l63
        #expect(try Message(decoding: hdr() + three + [61] + [UInt8](repeating: 0x62, count: 61) + [0] + typeAIn).questions[0].name.wireLength == 255)
        rejects(hdr() + three + [62] + [UInt8](repeating: 0x62, count: 62) + [0] + typeAIn, "longer than 255")
        rejects(hdr() + three + three + [0] + typeAIn, "longer than 255")
        // Through a pointer: 64 + 193 bytes.
        rejects(hdr(qd: 2) + three + [0] + typeAIn + [63] + l63 + [0xc0, 12] + typeAIn, "longer than 255")
        // Many short labels.
        rejects(hdr() + Array((0..<128).flatMap { _ in [UInt8(1), 0x61] }) + [0] + typeAIn, "longer than 255")
    }

    @Test func unknownLabelTypes() {
        rejects(hdr() + [0x40, 0x61] + typeAIn, "unknown label type 0x40")
        rejects(hdr() + [0x80, 0x61] + typeAIn, "unknown label type 0x80")
        rejects(hdr() + lbl("ok") + [0x7f] + typeAIn, "unknown label type 0x40")
        rejects(hdr(qd: 0, an: 1) + [0] + rrHead(2, rdlength: 2) + [0x80, 0], "unknown label type 0x80")
    }

    @Test func recordDataLengths() {
        let q = hdr(qd: 0, an: 1) + wire("a")
        rejects(q + rrHead(1, rdlength: 5) + [1, 2, 3, 4, 5], "A record with 5 bytes")
        rejects(q + rrHead(1, rdlength: 3) + [1, 2, 3], "A record with 3 bytes")
        rejects(q + rrHead(1, rdlength: 4) + [1, 2, 3], "record data runs past the end")
        rejects(q + rrHead(5, rdlength: 4) + wire("b"), "record data runs past the end")
        rejects(q + rrHead(5, rdlength: 4) + wire("b") + [0], "wrong length") // the name is 3 bytes
        rejects(q + rrHead(5, rdlength: 2) + wire("b"), "wrong length") // the name is longer than the data
        rejects(q + rrHead(12, rdlength: 0) + wire("b"), "wrong length") // the name is read past the data
        rejects(q + rrHead(33, rdlength: 5) + [0, 0, 0, 0, 0, 0] + wire("t"), "wrong length")
        rejects(q + rrHead(33, rdlength: 4) + [0, 0, 0, 0], "ends early")
        rejects(q + rrHead(6, rdlength: 2 + 19) + [0, 0] + [UInt8](repeating: 0, count: 19), "ends early")
        rejects(q + rrHead(6, rdlength: 2 + 21) + [0, 0] + [UInt8](repeating: 0, count: 21), "wrong length")
        rejects(q + rrHead(16, rdlength: 3) + [5, 0x61, 0x62, 0x63, 0x64, 0x65], "wrong length") // the string runs past
        rejects(q + rrHead(16, rdlength: 3) + [5, 0x61, 0x62], "ends early")
    }

    @Test func trailingBytesAndOPT() throws {
        let q = F.query("web.default.svc.cluster.local", .a)
        rejects(q + [0], "1 bytes after the last record")
        rejects(q + [0, 0, 0], "3 bytes after the last record")
        var two = F.query("a.b", .a, edns: EDNS(udpPayloadSize: 1232)) + [0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0]
        two[11] = 2
        rejects(two, "more than one OPT record")
        var named = F.query("a.b", .a)
        named[11] = 1
        rejects(named + lbl("x") + [0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0], "OPT record with a name")
        // OPT elsewhere than additional is a plain record.
        var inAnswers = F.query("a.b", .a)
        inAnswers[7] = 1
        let m = try Message(decoding: inAnswers + [0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0])
        #expect(m.edns == nil && m.answers.first?.type == .opt)
    }
}

// MARK: - fuzz

/// SplitMix64: small, fast, and the same sequence on every machine.
struct DNSFuzzRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    /// `count` random bytes, eight from each step.
    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { buf in
            var i = 0
            while i < count {
                var v = next()
                withUnsafeBytes(of: &v) { w in
                    for j in 0..<min(8, count - i) { buf[i + j] = w[j] }
                }
                i += 8
            }
        }
        return out
    }
}

struct DNSFuzzStats: CustomStringConvertible {
    var packets = 0, decoded = 0, drop = 0, forward = 0, chase = 0, replies = 0, truncated = 0, differential = 0
    var rcodes: [Int: Int] = [:]
    var failures: [String] = []
    var failureCount = 0

    mutating func fail(_ why: String, _ packet: [UInt8]) {
        failureCount += 1
        if failures.count < 10 { failures.append("\(why): \(packet)") }
    }

    var description: String {
        let r = rcodes.sorted { $0.key < $1.key }.map { "rcode \($0.key): \($0.value)" }.joined(separator: ", ")
        return "\(packets) packets, \(decoded) decode as messages; responder (UDP+TCP): \(replies) replies (\(r); \(truncated) TC), "
            + "\(drop) drops, \(forward) forwards, \(chase) chases; \(differential) replies compared with Zone.resolve"
    }
}

@Suite("DNSFuzz: random and mutated packets")
struct DNSFuzzTests {
    static let transports: [Transport] = [.udp, .tcp]

    /// Feeds one packet to the codec and to a responder over UDP and TCP; checks what
    /// comes back.
    static func check(_ packet: [UInt8], _ r: Responder, _ s: inout DNSFuzzStats, _ out: inout [UInt8], _ key: inout [UInt8]) {
        s.packets += 1
        let decoded = try? Message(decoding: packet)
        if let m = decoded {
            s.decoded += 1
            let again = m.encode()
            do {
                if try Message(decoding: again) != m { s.fail("re-encoded message decodes differently", packet) }
            } catch {
                s.fail("re-encoded message does not decode: \(error)", packet)
            }
        }
        var udpReply: ([UInt8], Message)?
        for t in transports {
            let outcome = packet.withUnsafeBytes { r.respond(to: $0, transport: t, out: &out, key: &key) }
            switch outcome {
            case .drop:
                s.drop += 1
                if packet.count >= 12 && packet[2] & 0x80 == 0 { s.fail("dropped a query", packet) }
            case .forward:
                s.forward += 1
                if let m = decoded, m.questions.count == 1, r.zone.isAuthoritative(for: m.questions[0].name) {
                    s.fail("forwarded a cluster name", packet)
                }
            case .chase(let c):
                s.chase += 1
                guard (try? Message(decoding: c.upstreamQuery(id: 1)))?.questions == [c.target] else {
                    s.fail("chase query", packet)
                    break
                }
                let a = c.answer(upstreamReply: nil, limit: 512)
                guard a.count >= 12, a.count <= 512, a[0] == packet[0], a[1] == packet[1], let m = try? Message(decoding: a), m.rcode == 2 else {
                    s.fail("chase answer", packet)
                    break
                }
            case .reply:
                s.replies += 1
                guard out.count >= 12 else { s.fail("reply under 12 bytes", packet); continue }
                guard out[0] == packet[0], out[1] == packet[1], out[2] & 0x80 != 0 else { s.fail("reply ID or QR", packet); continue }
                // Over TCP the reply is most often the UDP one again: decoded once.
                let reply: Message
                var again = false
                if t == .tcp, let (bytes, m) = udpReply, bytes == out {
                    reply = m
                    again = !m.header.truncated
                } else {
                    guard let m = try? Message(decoding: out) else { s.fail("reply does not decode: \(out)", packet); continue }
                    reply = m
                    if t == .udp { udpReply = (out, m) }
                }
                s.rcodes[reply.rcode, default: 0] += 1
                if reply.header.truncated {
                    s.truncated += 1
                    if t == .tcp { s.fail("TC over TCP", packet) }
                }
                if t == .udp {
                    if out.count > Responder.maxUDPSize { s.fail("UDP reply of \(out.count) bytes", packet) }
                    if reply.edns == nil && out.count > 512 { s.fail("UDP reply of \(out.count) bytes without EDNS", packet) }
                    if let m = decoded, m.edns == nil, out.count > 512 { s.fail("UDP reply of \(out.count) bytes to a query without EDNS", packet) }
                }
                if let q = reply.questions.first {
                    // The question exactly as asked.
                    let end = 12 + q.name.wireLength + 4
                    if reply.questions.count != 1 || packet.count < end || out[12..<end] != packet[12..<end] { s.fail("question not echoed", packet) }
                } else if reply.rcode != 1 && reply.rcode != 4 {
                    s.fail("reply without the question, rcode \(reply.rcode)", packet)
                }
                if ![0, 1, 2, 3, 4, 5, 16].contains(reply.rcode) { s.fail("rcode \(reply.rcode)", packet) }
                if let m = decoded, !again { differential(m, packet, r, reply, t, &s) }
            }
        }
    }

    /// A query that decodes is answered as Zone.resolve says, encoded directly (what
    /// the fast paths must match on whatever input).
    static func differential(_ m: Message, _ packet: [UInt8], _ r: Responder, _ reply: Message, _ t: Transport, _ s: inout DNSFuzzStats) {
        guard !m.header.response, m.header.opcode == 0, m.questions.count == 1 else { return }
        let q = m.questions[0]
        guard q.klass == DNSClass.in || q.klass == DNSClass.any, q.type != .axfr, q.type != .ixfr, (m.edns?.version ?? 0) == 0 else { return }
        // A compressed question name (a pointer into the header) is refused as FORMERR.
        var at = 12
        while at < packet.count, packet[at] != 0, packet[at] < 0x40 { at += 1 + Int(packet[at]) }
        guard at < packet.count, packet[at] == 0 else {
            if reply.rcode != 1 { s.fail("compressed question answered", packet) }
            return
        }
        s.differential += 1
        switch r.zone.resolve(q) {
        case .forward:
            s.fail("answered a question to forward: rcode \(reply.rcode)", packet)
        case .refused:
            if reply.rcode != 5 || !reply.answers.isEmpty { s.fail("refused: rcode \(reply.rcode)", packet) }
        case .answer(let rcode, let an, let ns, let ar):
            var e = Message()
            e.header.id = m.header.id
            e.header.response = true
            e.header.authoritative = true
            e.header.recursionDesired = m.header.recursionDesired
            e.header.recursionAvailable = !r.zone.upstreams.isEmpty
            e.header.rcode = rcode.rawValue
            e.questions = m.questions
            (e.answers, e.authority, e.additional) = (an, ns, ar)
            if m.edns != nil { e.edns = EDNS(udpPayloadSize: 1232) }
            let limit = t == .tcp ? 65535 : m.edns.map { min(max(Int($0.udpPayloadSize), 512), 1232) } ?? 512
            guard let want = try? Message(decoding: e.encode(limit: limit)), want == reply else {
                s.fail("differs from Zone.resolve (\(t))", packet)
                return
            }
        }
    }

    /// Valid queries and responses to mutate.
    static func corpus() -> [[UInt8]] {
        let names = ["web.default.svc.cluster.local", "_http._tcp.web.default.svc.cluster.local", "_pg._tcp.db.default.svc.cluster.local",
                     "db.default.svc.cluster.local", "nope.default.svc.cluster.local", "svc.cluster.local", "cluster.local",
                     "10-244-1-20.default.pod.cluster.local", "1-2-3.default.pod.cluster.local", "10.0.96.10.in-addr.arpa",
                     "99.0.96.10.in-addr.arpa", "1.1.168.192.in-addr.arpa", "alias2.default.svc.cluster.local",
                     "loop-a.default.svc.cluster.local", "ext.default.svc.cluster.local", "dns-version.cluster.local",
                     "example.com", "WeB.DeFault.SVC.cluster.local", "x.y.z.nope.cluster.local", "mid.default.svc.cluster.local"]
        var out: [[UInt8]] = []
        var id: UInt16 = 1
        for n in names {
            for t in [RRType.a, .aaaa, .srv, .ptr, .txt, .cname, .any, .soa] {
                for edns in [nil, EDNS(udpPayloadSize: 1232)] {
                    let q = F.query(n, t, id: id, edns: edns)
                    id &+= 1
                    out.append(q)
                    if t == .a || t == .srv {
                        out.append(F.ask(F.responder, q, .udp).1)
                        out.append(F.ask(F.responder, q, .tcp).1)
                    }
                }
            }
        }
        out.append(everyKindMessage().encode())
        out.append(F.query("version.bind", .txt, klass: DNSClass.chaos))
        out.append(F.query("cluster.local", .axfr))
        return out.filter { !$0.isEmpty }
    }

    static let interesting: [UInt8] = [0, 1, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff, 12, 41]

    static func mutate(_ input: [UInt8], _ rng: inout DNSFuzzRandom) -> [UInt8] {
        var b = input
        for _ in 0...rng.below(4) {
            switch rng.below(8) {
            case 0 where !b.isEmpty: // bit flip
                b[rng.below(b.count)] ^= 1 << UInt8(rng.below(8))
            case 1 where !b.isEmpty: // byte set
                b[rng.below(b.count)] = rng.below(2) == 0 ? rng.byte() : interesting[rng.below(interesting.count)]
            case 2: // truncation
                b.removeLast(rng.below(min(b.count, 40) + 1))
            case 3: // insertion
                let at = rng.below(b.count + 1)
                b.insert(contentsOf: rng.bytes(1 + rng.below(8)), at: at)
            case 4 where !b.isEmpty: // a duplicated slice
                let from = rng.below(b.count), len = 1 + rng.below(min(32, b.count - from))
                b.insert(contentsOf: Array(b[from..<(from + len)]), at: rng.below(b.count + 1))
            case 5 where b.count >= 12: // a count
                b[4 + rng.below(8)] = UInt8(rng.below(4))
            case 6 where b.count >= 3: // make it a query
                b[2] &= 0x7f
            case 7 where b.count >= 12: // a slice removed
                let from = 12 + rng.below(b.count - 11), len = rng.below(min(16, b.count - from) + 1)
                b.removeSubrange(from..<(from + len))
            default:
                break
            }
        }
        return b
    }

    @Test func randomPackets() {
        var rng = DNSFuzzRandom(seed: 0x6d69_6e69_6b01)
        var s = DNSFuzzStats(), out: [UInt8] = [], key: [UInt8] = []
        let clock = ContinuousClock(), start = clock.now
        for i in 0..<200_000 {
            var p = rng.bytes(rng.below(601))
            // Half look like a query with one question, to get past the header.
            if i % 2 == 1 && p.count >= 12 {
                p[2] &= 0x01
                p[4] = 0
                p[5] = 1
                p[6...9] = [0, 0, 0, 0]
                p[10] = 0
                p[11] &= 1
                // and a name of plausible labels, often.
                if rng.below(2) == 0 {
                    var q = 12
                    while q < p.count - 1 {
                        let len = rng.below(12)
                        p[q] = UInt8(len)
                        q += 1 + len
                        if len == 0 || rng.below(4) == 0 { break }
                    }
                }
            }
            Self.check(p, i % 4 == 0 ? F.forwarding : F.responder, &s, &out, &key)
        }
        print("DNS fuzz, random: \(s) in \(clock.now - start)")
        #expect(s.failureCount == 0, "\(s.failureCount) failures: \(s.failures.joined(separator: "\n"))")
    }

    /// 200,000 mutations in two halves of 100,000 (run side by side).
    @Test(arguments: [0, 1]) func mutatedPackets(half: Int) {
        var rng = DNSFuzzRandom(seed: 0x6d69_6e69_6b02 + UInt64(half))
        let seeds = Self.corpus()
        var s = DNSFuzzStats(), out: [UInt8] = [], key: [UInt8] = []
        let clock = ContinuousClock(), start = clock.now
        for i in 0..<100_000 {
            let p = Self.mutate(seeds[rng.below(seeds.count)], &rng)
            Self.check(p, i % 4 == 0 ? F.forwarding : F.responder, &s, &out, &key)
        }
        print("DNS fuzz, mutations of \(seeds.count) packets (half \(half + 1) of 2): \(s) in \(clock.now - start)")
        #expect(s.failureCount == 0, "\(s.failureCount) failures: \(s.failures.joined(separator: "\n"))")
        #expect(s.decoded > 5_000 && s.replies > 25_000 && s.differential > 5_000)
    }
}
