// The cluster zone as the DNS server answers it (MinikDNS Zone.swift, Responder.swift,
// ClusterRecords.swift, ZoneFile.swift): real query bytes in, response bytes decoded
// back; the protocol's refusals and errors; truncation by transport and EDNS size; the
// precompiled fast path against Zone.resolve; the Kubernetes DNS schema records
// (kubernetes/dns docs/specification.md); the zone file's text form.
@testable import MinikDNS
import Testing

// MARK: - fixture (shared with DNSCodecTests.swift)

enum DNSFixture {
    static func name(_ s: String) -> DNSName {
        do { return try DNSName(s) } catch { fatalError("bad test name \(s): \(error)") }
    }

    static func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }

    static func port(_ name: String, _ proto: String, _ port: Int) -> ClusterRecords.Port {
        ClusterRecords.Port(name: name, proto: proto, port: port)
    }

    static func endpoints(_ prefix: String, _ count: Int) -> [ClusterRecords.Endpoint] {
        (1...count).map { ClusterRecords.Endpoint(ip: ip("\(prefix).\($0)"), hostname: nil, ready: true) }
    }

    /// The services every test cluster has.
    static let services: [ClusterRecords.Service] = [
        .init(namespace: "default", name: "web", clusterIP: ip("10.96.0.10"), headless: false, externalName: nil,
              ports: [port("http", "TCP", 80), port("", "TCP", 8080), port("dns", "UDP", 53)], endpoints: []),
        .init(namespace: "default", name: "db", clusterIP: nil, headless: true, externalName: nil,
              ports: [port("pg", "TCP", 5432), port("", "TCP", 9999)],
              endpoints: [.init(ip: ip("10.244.1.5"), hostname: "db-0", ready: true),
                          .init(ip: ip("10.244.1.6"), hostname: nil, ready: true),
                          .init(ip: ip("10.244.1.7"), hostname: "db-2", ready: false)]),
        .init(namespace: "default", name: "empty", clusterIP: nil, headless: true, externalName: nil,
              ports: [port("x", "TCP", 1)], endpoints: [.init(ip: ip("10.244.1.8"), hostname: nil, ready: false)]),
        .init(namespace: "default", name: "pub", clusterIP: nil, headless: true, externalName: nil,
              ports: [port("http", "TCP", 80)], endpoints: [.init(ip: ip("10.244.1.9"), hostname: "pub-0", ready: false)],
              publishNotReady: true),
        .init(namespace: "default", name: "ext", clusterIP: nil, headless: false, externalName: "example.com",
              ports: [], endpoints: []),
        .init(namespace: "default", name: "big", clusterIP: nil, headless: true, externalName: nil,
              ports: [port("http", "TCP", 80)], endpoints: endpoints("10.244.2", 100)),
        .init(namespace: "default", name: "mid", clusterIP: nil, headless: true, externalName: nil,
              ports: [], endpoints: endpoints("10.244.3", 40)),
        .init(namespace: "kube-system", name: "kube-dns", clusterIP: ip("10.96.0.53"), headless: false, externalName: nil,
              ports: [port("dns", "UDP", 53), port("dns-tcp", "TCP", 53)], endpoints: []),
    ]

    static let pods: [ClusterRecords.Pod] = [
        .init(namespace: "default", name: "p1", ip: ip("10.244.1.20")),
        .init(namespace: "default", name: "db-0", ip: ip("10.244.1.5")),
        .init(namespace: "kube-system", name: "coredns", ip: ip("10.244.4.4")),
    ]

    static func input(domain: String = "cluster.local", upstreams: [Upstream] = [],
                      services: [ClusterRecords.Service] = DNSFixture.services) -> ClusterRecords.Input {
        ClusterRecords.Input(domain: domain, ttl: 5, upstreams: upstreams, serviceRange: IPv4CIDR("10.96.0.0/12")!,
                             podRange: IPv4CIDR("10.244.0.0/16")!, apiServiceIP: ip("10.96.0.1"),
                             namespaces: ["default", "kube-system"], services: services, pods: pods)
    }

    /// The cluster's zone file plus CNAMEs: a chain, loops, a dangling one, one to a pod.
    static func zoneFile(upstreams: [Upstream] = []) -> ZoneFile {
        var z: ZoneFile
        do { z = try ClusterRecords.zoneFile(input(upstreams: upstreams)) } catch { fatalError("\(error)") }
        let svc = ".default.svc.cluster.local"
        for (from, to) in [
            ("alias", "web" + svc), ("alias2", "alias" + svc), ("loop-a", "loop-b" + svc), ("loop-b", "loop-a" + svc),
            ("self", "self" + svc), ("dangling", "gone" + svc), ("podalias", "10-244-1-20.default.pod.cluster.local"),
            ("revalias", "10.0.96.10.in-addr.arpa"),
        ] {
            z.records.append((name(from + svc), .cname(name(to))))
        }
        // A chain of 8 CNAMEs (c0 -> c1 -> ... -> c8, which has an A), and one of 9.
        for i in 0..<8 { z.records.append((name("c\(i)" + svc), .cname(name("c\(i + 1)" + svc)))) }
        z.records.append((name("c8" + svc), .a(ip("10.96.0.88"))))
        for i in 0..<9 { z.records.append((name("d\(i)" + svc), .cname(name("d\(i + 1)" + svc)))) }
        z.records.append((name("d9" + svc), .a(ip("10.96.0.99"))))
        return z
    }

    static let responder = Responder(zone: zoneFile().zone)
    static let forwarding = Responder(zone: zoneFile(upstreams: [Upstream(ip: ip("10.96.100.53"))]).zone)

    static func query(_ qname: String, _ type: RRType, id: UInt16 = 0x1234, klass: UInt16 = DNSClass.in, edns: EDNS? = nil,
                      rd: Bool = true) -> [UInt8] {
        var m = Message()
        m.header.id = id
        m.header.recursionDesired = rd
        m.questions = [Question(name: name(qname), type: type, klass: klass)]
        m.edns = edns
        return m.encode()
    }

    static func ask(_ r: Responder, _ q: [UInt8], _ t: Transport = .udp) -> (Outcome, [UInt8]) {
        var out: [UInt8] = [], key: [UInt8] = []
        let outcome = q.withUnsafeBytes { r.respond(to: $0, transport: t, out: &out, key: &key) }
        return (outcome, out)
    }

    /// The decoded reply to `q`; records an issue when there is none.
    static func reply(_ q: [UInt8], _ t: Transport = .udp, sourceLocation: SourceLocation = #_sourceLocation) throws -> Message {
        try reply(responder, q, t, sourceLocation: sourceLocation)
    }

    static func reply(_ r: Responder, _ q: [UInt8], _ t: Transport = .udp,
                      sourceLocation: SourceLocation = #_sourceLocation) throws -> Message {
        let (outcome, bytes) = ask(r, q, t)
        #expect(outcome == .reply, sourceLocation: sourceLocation)
        let m = try Message(decoding: bytes)
        #expect(m.header.response, sourceLocation: sourceLocation)
        #expect(m.header.id == UInt16(q[0]) << 8 | UInt16(q[1]), sourceLocation: sourceLocation)
        return m
    }

    static func rr(_ owner: String, _ type: RRType, _ data: RData, ttl: UInt32 = 5) -> ResourceRecord {
        ResourceRecord(name: name(owner), type: type, ttl: ttl, data: data)
    }

    static func soa(_ owner: String = "cluster.local", serial: UInt32 = 1) -> ResourceRecord {
        rr(owner, .soa, .soa(mname: name("ns.dns.cluster.local"), rname: name("hostmaster.cluster.local"), serial: serial,
                             refresh: 7200, retry: 1800, expire: 86400, minimum: 5))
    }
}

private typealias F = DNSFixture
private let svc = ".default.svc.cluster.local"

// MARK: - responder

@Suite("DNSResponder: answers from the zone")
struct DNSResponderAnswerTests {
    @Test func aRecord() throws {
        let m = try F.reply(F.query("web" + svc, .a))
        #expect(m.rcode == 0)
        #expect(m.header.authoritative && m.header.recursionDesired && !m.header.recursionAvailable && !m.header.truncated)
        #expect(m.questions == [Question(name: F.name("web" + svc), type: .a)])
        #expect(m.answers == [F.rr("web" + svc, .a, .a(F.ip("10.96.0.10")))])
        #expect(m.authority.isEmpty && m.additional.isEmpty && m.edns == nil)
        // RD is echoed as asked.
        #expect(try !F.reply(F.query("web" + svc, .a, rd: false)).header.recursionDesired)
    }

    @Test func srvWithAdditionalAddresses() throws {
        let m = try F.reply(F.query("_http._tcp.web" + svc, .srv))
        #expect(m.rcode == 0)
        #expect(m.answers == [F.rr("_http._tcp.web" + svc, .srv, .srv(priority: 0, weight: 100, port: 80, target: F.name("web" + svc)))])
        #expect(m.additional == [F.rr("web" + svc, .a, .a(F.ip("10.96.0.10")))])

        let h = try F.reply(F.query("_pg._tcp.db" + svc, .srv))
        #expect(h.answers.count == 2)
        let targets = h.answers.compactMap { rr -> DNSName? in
            if case .srv(_, _, 5432, let t) = rr.data { return t }
            return nil
        }
        #expect(targets == [F.name("db-0.db" + svc), F.name("10-244-1-6.db" + svc)])
        #expect(Set(h.additional) == [F.rr("db-0.db" + svc, .a, .a(F.ip("10.244.1.5"))),
                                      F.rr("10-244-1-6.db" + svc, .a, .a(F.ip("10.244.1.6")))])
    }

    @Test func ptrAndTxt() throws {
        #expect(try F.reply(F.query("10.0.96.10.in-addr.arpa", .ptr)).answers == [F.rr("10.0.96.10.in-addr.arpa", .ptr, .ptr(F.name("web" + svc)))])
        #expect(try F.reply(F.query("5.1.244.10.in-addr.arpa", .ptr)).answers ==
            [F.rr("5.1.244.10.in-addr.arpa", .ptr, .ptr(F.name("db-0.db" + svc)))])
        #expect(try F.reply(F.query("20.1.244.10.in-addr.arpa", .ptr)).answers ==
            [F.rr("20.1.244.10.in-addr.arpa", .ptr, .ptr(F.name("10-244-1-20.default.pod.cluster.local")))])
        let t = try F.reply(F.query("dns-version.cluster.local", .txt))
        #expect(t.answers == [F.rr("dns-version.cluster.local", .txt, .txt([Array("1.1.0".utf8)]))])
    }

    @Test func cnameChainsAreFollowedInsideTheZone() throws {
        let web = F.rr("web" + svc, .a, .a(F.ip("10.96.0.10")))
        let a1 = try F.reply(F.query("alias" + svc, .a))
        #expect(a1.rcode == 0)
        #expect(a1.answers == [F.rr("alias" + svc, .cname, .cname(F.name("web" + svc))), web])
        let a2 = try F.reply(F.query("alias2" + svc, .a))
        #expect(a2.answers.map(\.type) == [.cname, .cname, .a])
        #expect(a2.answers.last == web)
        // Asking for the CNAME itself gives just it.
        #expect(try F.reply(F.query("alias2" + svc, .cname)).answers == [F.rr("alias2" + svc, .cname, .cname(F.name("alias" + svc)))])
        // NODATA at the end of the chain keeps the chain.
        let nodata = try F.reply(F.query("alias" + svc, .aaaa))
        #expect(nodata.rcode == 0 && nodata.answers.map(\.type) == [.cname] && nodata.authority == [F.soa()])
        // A target that does not exist: NXDOMAIN with the chain (RFC 6604).
        let d = try F.reply(F.query("dangling" + svc, .a))
        #expect(d.rcode == 3)
        #expect(d.answers == [F.rr("dangling" + svc, .cname, .cname(F.name("gone" + svc)))])
        #expect(d.authority == [F.soa()])
        // To a pod name and into a reverse range.
        #expect(try F.reply(F.query("podalias" + svc, .a)).answers.last ==
            F.rr("10-244-1-20.default.pod.cluster.local", .a, .a(F.ip("10.244.1.20"))))
        #expect(try F.reply(F.query("revalias" + svc, .ptr)).answers.last ==
            F.rr("10.0.96.10.in-addr.arpa", .ptr, .ptr(F.name("web" + svc))))
        // Out of the cluster, no upstream: the CNAME alone.
        let e = try F.reply(F.query("ext" + svc, .a))
        #expect(e.rcode == 0 && e.answers == [F.rr("ext" + svc, .cname, .cname(F.name("example.com")))] && e.authority.isEmpty)
    }

    @Test func longChainsAndLoopsAreServerFailures() throws {
        // c0 .. c7 are 8 CNAMEs: followed. d0 .. d8 are 9: too many.
        let c = try F.reply(F.query("c0" + svc, .a))
        #expect(c.rcode == 0 && c.answers.count == 9 && c.answers.last?.data == .a(F.ip("10.96.0.88")))
        for n in ["d0", "loop-a", "loop-b", "self"] {
            let m = try F.reply(F.query(n + svc, .a))
            #expect(m.rcode == Int(RCode.servFail.rawValue), "\(n)")
            #expect(m.answers.isEmpty)
            // TCP too; and the loop's own CNAME is still there when asked for.
            #expect(try F.reply(F.query(n + svc, .a), .tcp).rcode == 2)
            #expect(try F.reply(F.query(n + svc, .cname)).answers.count == 1)
        }
    }

    @Test func nodataForAnExistingNameOfAnotherType() throws {
        for (n, t) in [("web" + svc, RRType.aaaa), ("web" + svc, .txt), ("db" + svc, .srv), ("dns-version.cluster.local", .a),
                       ("10.0.96.10.in-addr.arpa", .a)] {
            let m = try F.reply(F.query(n, t))
            #expect(m.rcode == 0, "\(n) \(t)")
            #expect(m.header.authoritative)
            #expect(m.answers.isEmpty && m.additional.isEmpty)
            #expect(m.authority.count == 1)
            let soa = try #require(m.authority.first)
            #expect(soa.type == .soa && soa.ttl == 5)
            if n.hasSuffix("in-addr.arpa") {
                #expect(soa.name == F.name("10.in-addr.arpa"))
            } else {
                #expect(soa == F.soa())
            }
        }
    }

    @Test func nxdomainWithTheSOA() throws {
        for n in ["nope" + svc, "x.web" + svc, "a.b.c.nope.cluster.local", "nope.cluster.local", "empty" + svc,
                  "_x._tcp.empty" + svc, "_http._udp.web" + svc, "db-2.db" + svc, "nons.svc.cluster.local"] {
            for t in [RRType.a, .aaaa, .srv, .any] {
                let m = try F.reply(F.query(n, t))
                #expect(m.rcode == 3, "\(n) \(t)")
                #expect(m.header.authoritative && m.answers.isEmpty && m.additional.isEmpty)
                #expect(m.authority == [F.soa()], "\(n) \(t)")
            }
        }
    }

    @Test func emptyNonTerminalsExist() throws {
        for n in ["svc.cluster.local", "default.svc.cluster.local", "kube-system.svc.cluster.local", "_tcp.web" + svc,
                  "_tcp.db" + svc, "pod.cluster.local", "default.pod.cluster.local", "kube-system.pod.cluster.local",
                  "0.96.10.in-addr.arpa", "96.10.in-addr.arpa"] {
            let m = try F.reply(F.query(n, .a))
            #expect(m.rcode == 0, "\(n)")
            #expect(m.answers.isEmpty && m.authority.count == 1 && m.authority.first?.type == .soa, "\(n)")
        }
        // The apex itself: SOA and NS.
        #expect(try F.reply(F.query("cluster.local", .soa)).answers == [F.soa()])
        #expect(try F.reply(F.query("cluster.local", .ns)).answers == [F.rr("cluster.local", .ns, .ns(F.name("ns.dns.cluster.local")))])
    }

    @Test func theQuestionsLetterCaseIsKept() throws {
        // 0x20: the response carries the question byte for byte and answers from the
        // zone whatever the case; owner names in it take the case asked.
        let asked = ["wEb.DeFAULT.SvC.cluster.LOCAL", "_HTTP._Tcp.Web.Default.Svc.Cluster.Local", "NoPe.DeFaUlT.SVC.Cluster.Local",
                     "ALIAS.default.svc.cluster.local", "10-244-1-20.DEFAULT.POD.Cluster.Local", "10.0.96.10.IN-ADDR.ARPA",
                     "99.0.96.10.In-Addr.Arpa", "SVC.Cluster.Local", "Web.Default.Svc.Cluster.Local"]
        for n in asked {
            for t in [RRType.a, .srv, .ptr, .aaaa] {
                for edns in [nil, EDNS(udpPayloadSize: 1232)] {
                    let q = F.query(n, t, edns: edns)
                    let (outcome, bytes) = F.ask(F.responder, q)
                    #expect(outcome == .reply)
                    let qEnd = 12 + F.name(n).wireLength + 4
                    #expect(Array(bytes[12..<qEnd]) == Array(q[12..<qEnd]), "\(n) \(t)")
                    let m = try Message(decoding: bytes)
                    let lower = try F.reply(F.query(n.lowercased(), t, edns: edns))
                    #expect(m == lower, "\(n) \(t)") // names compare without case
                    #expect(m.questions.first?.name.labels == F.name(n).labels)
                    for rr in m.answers + m.authority where rr.name == F.name(n) {
                        #expect(rr.name.labels == F.name(n).labels, "\(n) \(t)")
                    }
                }
            }
        }
        // The SOA of an NXDOMAIN takes the case of the zone part of the question.
        let nx = try F.reply(F.query("NoPe.DeFaUlT.SVC.Cluster.Local", .a))
        #expect(nx.rcode == 3 && nx.authority.first?.name.labels == F.name("Cluster.Local").labels)
        #expect(try F.reply(F.query("WEB" + svc.uppercased(), .a)).answers.first?.data == .a(F.ip("10.96.0.10")))
    }

    @Test func classANYIsAnsweredLikeIN() throws {
        let m = try F.reply(F.query("web" + svc, .a, klass: DNSClass.any))
        #expect(m.rcode == 0 && m.answers.count == 1)
    }

    @Test func typeANYGoesTheSlowWay() throws {
        let m = try F.reply(F.query("web" + svc, .any))
        #expect(m.rcode == 0 && m.answers == [F.rr("web" + svc, .a, .a(F.ip("10.96.0.10")))])
        let apex = try F.reply(F.query("cluster.local", .any))
        #expect(Set(apex.answers.map(\.type)) == [.soa, .ns])
    }
}

@Suite("DNSResponder: protocol")
struct DNSResponderProtocolTests {
    @Test func ednsIsEchoedWithOurSize() throws {
        for size: UInt16 in [0, 512, 1232, 4096, 65535] {
            let m = try F.reply(F.query("web" + svc, .a, edns: EDNS(udpPayloadSize: size, dnssecOK: true)))
            #expect(m.edns == EDNS(udpPayloadSize: 1232))
            #expect(m.rcode == 0 && m.answers.count == 1)
        }
        // The slow path and the negative fast path echo it too.
        for n in ["nope" + svc, "10-244-1-20.default.pod.cluster.local", "alias" + svc, "99.0.96.10.in-addr.arpa"] {
            #expect(try F.reply(F.query(n, .a, edns: EDNS(udpPayloadSize: 4096))).edns == EDNS(udpPayloadSize: 1232), "\(n)")
        }
    }

    @Test func ednsVersionAboveZeroIsBADVERS() throws {
        for n in ["web" + svc, "nope" + svc, "example.com"] {
            let q = F.query(n, .a, edns: EDNS(udpPayloadSize: 1232, version: 1))
            let m = try F.reply(q)
            #expect(m.rcode == 16, "\(n)")
            #expect(m.header.rcode == 0 && m.edns?.extendedRCode == 1 && m.edns?.version == 0)
            #expect(m.questions == [Question(name: F.name(n), type: .a)])
            #expect(m.answers.isEmpty && m.authority.isEmpty)
        }
    }

    @Test func udpWithoutEDNSIsLimitedTo512Bytes() throws {
        // 100 endpoints: 100 A records do not fit 512 (nor 1232) bytes.
        let q = F.query("big" + svc, .a)
        let (_, udp) = F.ask(F.responder, q, .udp)
        #expect(udp.count <= 512)
        let m = try Message(decoding: udp)
        #expect(m.header.truncated && m.rcode == 0)
        #expect(m.questions == [Question(name: F.name("big" + svc), type: .a)])
        #expect(m.answers.isEmpty && m.authority.isEmpty && m.additional.isEmpty)
        let (_, tcp) = F.ask(F.responder, q, .tcp)
        let full = try Message(decoding: tcp)
        #expect(!full.header.truncated && full.answers.count == 100 && tcp.count > 1232)
        #expect(Set(full.answers.map(\.data)) == Set((1...100).map { RData.a(F.ip("10.244.2.\($0)")) }))
        // The SRV answer with its 100 additional addresses too.
        let srv = try F.reply(F.query("_http._tcp.big" + svc, .srv), .tcp)
        #expect(srv.answers.count == 100 && srv.additional.count == 100 && !srv.header.truncated)
        #expect(try F.reply(F.query("_http._tcp.big" + svc, .srv)).header.truncated)
        // The slow path (ANY) truncates the same way.
        let any = try F.reply(F.query("big" + svc, .any))
        #expect(any.header.truncated && any.answers.isEmpty)
        #expect(try F.reply(F.query("big" + svc, .any), .tcp).answers.count == 100)
    }

    @Test func ednsRaisesTheLimitTo1232AtMost() throws {
        // 40 endpoints: over 512 bytes, under 1232.
        let mid = F.query("mid" + svc, .a, edns: EDNS(udpPayloadSize: 4096))
        let (_, bytes) = F.ask(F.responder, mid)
        #expect(bytes.count > 512 && bytes.count <= 1232)
        let m = try Message(decoding: bytes)
        #expect(!m.header.truncated && m.answers.count == 40)
        #expect(try F.reply(F.query("mid" + svc, .a)).header.truncated) // no EDNS
        #expect(try F.reply(F.query("mid" + svc, .a, edns: EDNS(udpPayloadSize: 512))).header.truncated)
        #expect(try F.reply(F.query("mid" + svc, .a, edns: EDNS(udpPayloadSize: 100))).header.truncated) // at least 512
        // 100 endpoints do not fit 1232, whatever the client says.
        let (_, big) = F.ask(F.responder, F.query("big" + svc, .a, edns: EDNS(udpPayloadSize: 4096)))
        #expect(big.count <= 1232)
        let b = try Message(decoding: big)
        #expect(b.header.truncated && b.answers.isEmpty && b.edns == EDNS(udpPayloadSize: 1232))
        #expect(try F.reply(F.query("big" + svc, .a, edns: EDNS(udpPayloadSize: 4096)), .tcp).answers.count == 100)
    }

    @Test func exactlyAtTheLimit() throws {
        // x.t TXT: 12 + 9 (question) + 12 (record head) + 256 + 1 + n bytes = 290 + n, and 11
        // for OPT.
        for (n, limit, edns) in [(222, 512, EDNS?.none), (211, 512, EDNS(udpPayloadSize: 512)), (211, 512, EDNS(udpPayloadSize: 100))] {
            for extra in [0, 1] {
                var z = ZoneFile(domain: F.name("t"))
                z.records = [(F.name("x.t"), .txt([[UInt8](repeating: 0x61, count: 255), [UInt8](repeating: 0x62, count: n + extra)]))]
                let r = Responder(zone: z.zone)
                for t in [RRType.txt, .any] { // the fast path and the slow one
                    let (_, bytes) = F.ask(r, F.query("x.t", t, edns: edns))
                    let m = try Message(decoding: bytes)
                    #expect(m.header.truncated == (extra == 1), "\(n + extra) \(t)")
                    #expect(bytes.count == (extra == 0 ? limit : 21 + (edns == nil ? 0 : 11)), "\(n + extra) \(t)")
                }
            }
        }
    }

    @Test func opcodesOtherThanQueryAreNOTIMP() throws {
        for opcode: UInt8 in [1, 2, 4, 5, 15] {
            var q = F.query("web" + svc, .a, id: 0xabcd)
            q[2] |= opcode << 3
            let m = try F.reply(q)
            #expect(m.rcode == 4 && m.header.opcode == opcode, "\(opcode)")
            #expect(m.questions.isEmpty && m.answers.isEmpty && m.header.recursionDesired)
        }
    }

    @Test func oneQuestionOrFORMERR() throws {
        var none = Message()
        none.header.id = 7
        var two = none
        two.questions = [Question(name: F.name("web" + svc), type: .a), Question(name: F.name("db" + svc), type: .a)]
        for q in [none, two] {
            let (outcome, bytes) = F.ask(F.responder, q.encode())
            #expect(outcome == .reply && bytes.count == 12)
            let m = try Message(decoding: bytes)
            #expect(m.rcode == 1 && m.header.id == 7 && m.header.response && m.questions.isEmpty)
        }
        // Malformed queries: FORMERR without the question.
        let good = F.query("web" + svc, .a)
        let head = Array(good[0..<12])
        func label(_ n: Int, _ c: UInt8) -> [UInt8] { [UInt8(n)] + [UInt8](repeating: c, count: n) }
        var compressed: [UInt8] = head + [3, 0x77, 0x77, 0x77, 0xc0, 16]
        compressed += [0, 1, 0, 1]
        var twoOPT = F.query("web" + svc, .a, edns: EDNS(udpPayloadSize: 1232))
        twoOPT += [0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]
        twoOPT[11] = 2
        var anCut = good
        anCut[7] = 1
        anCut += [0xc0, 12, 0, 1, 0, 1]
        var label64 = head + label(64, 0x61)
        label64 += [0, 0, 1, 0, 1]
        var name256 = head + label(63, 0x61) + label(63, 0x62)
        name256 += label(63, 0x63) + label(62, 0x64) + [0, 0, 1, 0, 1]
        let cases: [(String, [UInt8])] = [
            ("question cut", Array(good.dropLast(3))), ("name cut", Array(good.prefix(20))), ("trailing byte", good + [0]),
            ("compressed question", compressed), ("two OPT", twoOPT), ("an record cut", anCut), ("label 64", label64),
            ("name 256", name256),
        ]
        for (what, bytes) in cases {
            let (outcome, out) = F.ask(F.responder, bytes)
            #expect(outcome == .reply, "\(what)")
            let m = try Message(decoding: out)
            #expect(m.rcode == 1 && m.questions.isEmpty && m.header.id == 0x1234, "\(what)")
        }
        // 255 bytes is the longest name: it parses (and is not the cluster's).
        var longest = head + label(63, 0x61) + label(63, 0x62)
        longest += label(63, 0x63) + label(61, 0x64) + [0, 0, 1, 0, 1]
        #expect(try F.reply(longest).rcode == 5)
    }

    @Test func responsesAndShortPacketsAreDropped() {
        var r = F.query("web" + svc, .a)
        r[2] |= 0x80
        #expect(F.ask(F.responder, r).0 == .drop)
        #expect(F.ask(F.responder, r, .tcp).0 == .drop)
        let (_, reply) = F.ask(F.responder, F.query("web" + svc, .a))
        #expect(F.ask(F.responder, reply).0 == .drop)
        let q = F.query("web" + svc, .a)
        for n in 0..<12 {
            let (outcome, out) = F.ask(F.responder, Array(q.prefix(n)))
            #expect(outcome == .drop && out.isEmpty, "\(n) bytes")
        }
    }

    @Test func otherClassesAndZoneTransfersAreREFUSED() throws {
        for (n, t, k) in [("version.bind", RRType.txt, DNSClass.chaos), ("web" + svc, .a, DNSClass.chaos), ("web" + svc, .a, UInt16(4)),
                          ("cluster.local", .axfr, DNSClass.in), ("cluster.local", .ixfr, DNSClass.in), ("web" + svc, .axfr, DNSClass.in)] {
            for r in [F.responder, F.forwarding] {
                let m = try F.reply(r, F.query(n, t, klass: k, edns: EDNS(udpPayloadSize: 1232)))
                #expect(m.rcode == 5, "\(n) \(t) \(k)")
                #expect(m.questions == [Question(name: F.name(n), type: t, klass: k)])
                #expect(m.answers.isEmpty && !m.header.authoritative && m.edns != nil)
            }
        }
    }

    @Test func namesOutsideTheClusterAreRefusedOrForwarded() throws {
        for n in ["example.com", "local", "xcluster.local", "cluster.local.example.com", "1.1.168.192.in-addr.arpa",
                  "10.in-addr.arpa.example", "in-addr.arpa", "arpa", "1.2.3.4.5.in-addr.arpa", "a.10.in-addr.arpa"] {
            let m = try F.reply(F.query(n, .a))
            #expect(m.rcode == 5, "\(n)")
            #expect(!m.header.recursionAvailable && !m.header.authoritative && m.answers.isEmpty, "\(n)")
            #expect(m.questions.first?.name.labels == F.name(n).labels)
            #expect(F.ask(F.forwarding, F.query(n, .a)).0 == .forward, "\(n)")
            #expect(F.ask(F.forwarding, F.query(n, .a), .tcp).0 == .forward, "\(n)")
        }
        // The root too.
        #expect(try F.reply(F.query(".", .ns)).rcode == 5)
        #expect(F.ask(F.forwarding, F.query(".", .ns)).0 == .forward)
        // With upstreams, the cluster's answers say recursion is available.
        let m = try F.reply(F.forwarding, F.query("web" + svc, .a))
        #expect(m.header.recursionAvailable && m.answers.count == 1)
        #expect(try F.reply(F.forwarding, F.query("nope" + svc, .a)).header.recursionAvailable)
    }

    @Test func reverseNamesInsideTheRangesAreAnswered() throws {
        for (n, zone) in [("99.0.96.10.in-addr.arpa", "10.in-addr.arpa"), ("255.255.111.10.in-addr.arpa", "10.in-addr.arpa"),
                          ("9.9.244.10.in-addr.arpa", "244.10.in-addr.arpa"), ("0.0.244.10.in-addr.arpa", "244.10.in-addr.arpa"),
                          ("1.200.244.10.in-addr.arpa", "244.10.in-addr.arpa")] {
            for r in [F.responder, F.forwarding] {
                let m = try F.reply(r, F.query(n, .ptr))
                #expect(m.rcode == 3, "\(n)")
                #expect(m.authority == [F.soa(zone)], "\(n)")
            }
        }
        // Just outside: 10.112.0.0 is past 10.96.0.0/12, 10.245 past 10.244.0.0/16.
        for n in ["1.0.112.10.in-addr.arpa", "1.0.95.10.in-addr.arpa", "1.0.245.10.in-addr.arpa", "1.0.0.11.in-addr.arpa"] {
            #expect(try F.reply(F.query(n, .ptr)).rcode == 5, "\(n)")
            #expect(F.ask(F.forwarding, F.query(n, .ptr)).0 == .forward, "\(n)")
        }
        // Labels that are not octets: not ours.
        for n in ["01.0.96.10.in-addr.arpa", "256.0.96.10.in-addr.arpa", "x.0.96.10.in-addr.arpa", "+1.0.96.10.in-addr.arpa"] {
            #expect(try F.reply(F.query(n, .ptr)).rcode == 5, "\(n)")
        }
    }

    @Test func podNames() throws {
        for (n, address) in [("10-244-1-20.default.pod.cluster.local", "10.244.1.20"), ("1-2-3-4.kube-system.pod.cluster.local", "1.2.3.4"),
                             ("10-244-9-9.DEFAULT.pod.cluster.local", "10.244.9.9"), ("255-255-255-255.default.pod.cluster.local", "255.255.255.255")] {
            for t in [Transport.udp, .tcp] {
                let m = try F.reply(F.query(n, .a), t)
                #expect(m.rcode == 0 && m.answers == [F.rr(n, .a, .a(F.ip(address)))], "\(n)")
                #expect(m.answers.first?.name.labels == F.name(n).labels)
            }
            let aaaa = try F.reply(F.query(n, .aaaa))
            #expect(aaaa.rcode == 0 && aaaa.answers.isEmpty && aaaa.authority == [F.soa()], "\(n)")
        }
        for n in ["1-2-3.default.pod.cluster.local", "300-1-1-1.default.pod.cluster.local", "01-2-3-4.default.pod.cluster.local",
                  "a-b-c-d.default.pod.cluster.local", "1-2-3-4-5.default.pod.cluster.local", "1--3-4.default.pod.cluster.local",
                  "x.1-2-3-4.default.pod.cluster.local", "nons.pod.cluster.local",
                  // a namespace that does not exist (its pod.<zone> name is NXDOMAIN too, RFC 8020)
                  "10-244-1-20.nons.pod.cluster.local"] {
            let m = try F.reply(F.query(n, .a))
            #expect(m.rcode == 3, "\(n)")
            #expect(m.authority == [F.soa()], "\(n)")
        }
    }

    @Test func externalNamesAreChasedUpstream() throws {
        let q = F.query("eXt" + svc, .a, id: 0x4242, edns: EDNS(udpPayloadSize: 4096))
        let (outcome, out) = F.ask(F.forwarding, q)
        guard case .chase(let chase) = outcome else {
            Issue.record("expected a chase, got \(outcome)")
            return
        }
        #expect(out.isEmpty)
        #expect(chase.chain == [F.rr("eXt" + svc, .cname, .cname(F.name("example.com")))])
        #expect(chase.target == Question(name: F.name("example.com"), type: .a))
        let up = try Message(decoding: chase.upstreamQuery(id: 9))
        #expect(up.header.id == 9 && up.header.recursionDesired && up.questions == [chase.target] && up.edns != nil)
        // The upstream's answer joins the chain.
        var reply = Message()
        reply.header = Header(id: 9, flags: 0x8180)
        reply.questions = [chase.target]
        reply.answers = [ResourceRecord(name: F.name("example.com"), type: .a, ttl: 300, data: .a(F.ip("93.184.216.34")))]
        let answer = try Message(decoding: chase.answer(upstreamReply: reply.encode(), limit: 1232))
        #expect(answer.header.id == 0x4242 && answer.header.response && answer.header.recursionAvailable && answer.rcode == 0)
        #expect(answer.questions.first?.name.labels == F.name("eXt" + svc).labels)
        #expect(answer.answers == chase.chain + reply.answers)
        #expect(answer.edns == EDNS(udpPayloadSize: 1232))
        // NXDOMAIN upstream: the chain and the upstream's SOA.
        var nx = reply
        nx.header.rcode = 3
        nx.answers = []
        nx.authority = [ResourceRecord(name: F.name("com"), type: .soa, ttl: 60, data: .soa(mname: F.name("a.gtld"), rname: F.name("b.gtld"),
                                                                                          serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5))]
        let nxa = try Message(decoding: chase.answer(upstreamReply: nx.encode(), limit: 1232))
        #expect(nxa.rcode == 3 && nxa.answers == chase.chain && nxa.authority == nx.authority)
        // A truncated upstream reply gives a truncated answer, not a CNAME that seems to
        // lead nowhere: the client asks again over TCP.
        var tc = reply
        tc.header.truncated = true
        tc.answers = []
        let tca = try Message(decoding: chase.answer(upstreamReply: tc.encode(), limit: 1232))
        #expect(tca.header.truncated && tca.rcode == 0)
        #expect(try !Message(decoding: chase.answer(upstreamReply: reply.encode(), limit: 1232)).header.truncated)
        // No reply, garbage, another question: SERVFAIL.
        var other = reply
        other.questions = [Question(name: F.name("example.org"), type: .a)]
        for bad in [nil, [UInt8](), [1, 2, 3], other.encode()] {
            let m = try Message(decoding: chase.answer(upstreamReply: bad, limit: 1232))
            #expect(m.rcode == 2 && m.header.id == 0x4242 && m.answers.isEmpty)
        }
        // Over the limit: truncated.
        var many = reply
        many.answers = (1...100).map { ResourceRecord(name: F.name("example.com"), type: .a, ttl: 300, data: .a(IPv4Address(UInt32($0)))) }
        let big = chase.answer(upstreamReply: many.encode(), limit: 512)
        #expect(big.count <= 512)
        #expect(try Message(decoding: big).header.truncated)
        // Asking for the CNAME itself is answered from the zone; a target inside the
        // cluster is answered from the zone too.
        #expect(F.ask(F.forwarding, F.query("ext" + svc, .cname)).0 == .reply)
        #expect(try F.reply(F.forwarding, F.query("alias" + svc, .a)).answers.count == 2)
    }
}

@Suite("DNSResponder: the fast path matches Zone.resolve")
struct DNSResponderEquivalenceTests {
    /// What the responder should send: Zone.resolve's answer, encoded directly.
    static func expected(_ zone: Zone, _ q: [UInt8], limit: Int) throws -> [UInt8]? {
        let query = try Message(decoding: q)
        guard case .answer(let rcode, let an, let ns, let ar) = zone.resolve(query.questions[0]) else { return nil }
        var m = Message()
        m.header.id = query.header.id
        m.header.response = true
        m.header.authoritative = true
        m.header.recursionDesired = query.header.recursionDesired
        m.header.recursionAvailable = !zone.upstreams.isEmpty
        m.header.rcode = rcode.rawValue
        m.questions = query.questions
        m.answers = an
        m.authority = ns
        m.additional = ar
        if query.edns != nil { m.edns = EDNS(udpPayloadSize: 1232) }
        return m.encode(limit: limit)
    }

    static let configs: [(EDNS?, Transport, Int)] = [(nil, .udp, 512), (EDNS(udpPayloadSize: 4096), .udp, 1232), (nil, .tcp, 65535)]

    @Test func everyNameAndType() throws {
        let r = F.responder
        // Every name that exists (record owners and empty non-terminals), but only a
        // sample of the 140 alike endpoint names and PTRs of big and mid.
        let existing = r.zone.existing.sorted { $0.lexicographicallyPrecedes($1) }.map { key -> DNSName in
            var labels: [[UInt8]] = []
            var i = 0
            while key[i] != 0 {
                labels.append(Array(key[(i + 1)...(i + Int(key[i]))]))
                i += 1 + Int(key[i])
            }
            return DNSName(labels: labels)
        }
        var names = existing.enumerated().filter { i, n in
            let text = n.description
            let alike = [".big.default.", ".mid.default.", ".2.244.10.in-addr", ".3.244.10.in-addr"].contains { text.contains($0) }
            return !alike || i % 20 == 0
        }.map(\.1)
        #expect(Set(r.zone.records.values.map { $0[0].name }).isSubset(of: Set(existing)))
        names += ["nope" + svc, "x.web" + svc, "10-244-1-20.default.pod.cluster.local", "1-2-3.default.pod.cluster.local",
                  "77.0.96.10.in-addr.arpa", "nope.cluster.local", "big" + svc, "_http._tcp.big" + svc, "mid" + svc].map(F.name)
        // Upper-case variants of some: the same answers, the names in the asked case.
        names += names.enumerated().filter { i, _ in i % 2 == 0 }.map { _, n in
            DNSName(labels: n.labels.enumerated().map { i, l in i % 2 == 0 ? l.map { $0 >= 0x61 && $0 <= 0x7a ? $0 - 32 : $0 } : l })
        }
        let types: [RRType] = [.a, .aaaa, .srv, .ptr, .txt, .cname, .soa, RRType(99)]
        var checked = 0, fast = 0
        for n in names {
            for t in types {
                for (edns, transport, limit) in Self.configs {
                    var m = Message()
                    m.header.id = UInt16(checked & 0xffff)
                    m.header.recursionDesired = checked % 3 != 0
                    m.questions = [Question(name: n, type: t)]
                    m.edns = edns
                    let q = m.encode()
                    guard let want = try Self.expected(r.zone, q, limit: limit) else { continue }
                    let (outcome, got) = F.ask(r, q, transport)
                    #expect(outcome == .reply)
                    #expect(try Message(decoding: got) == Message(decoding: want), "\(n) \(t) \(transport)")
                    #expect(got == want, "\(n) \(t) \(transport): bytes differ")
                    checked += 1
                    if r.compiled[n.key] != nil { fast += 1 }
                }
            }
        }
        #expect(checked > 3000 && fast > 1500, "checked \(checked), fast path \(fast)")
        print("DNS fast path equivalence: \(checked) queries, \(fast) through the fast path")
    }
}

// MARK: - Kubernetes DNS schema

@Suite("DNSClusterRecords: the Kubernetes DNS specification")
struct DNSClusterRecordsTests {
    static let file: ZoneFile = {
        do { return try ClusterRecords.zoneFile(F.input()) } catch { fatalError("\(error)") }
    }()

    /// The data of every record named `n` (any case).
    static func data(_ n: String, in z: ZoneFile = file) -> [RData] {
        z.records.filter { $0.name == F.name(n) }.map(\.data)
    }

    static func resolve(_ n: String, _ t: RRType, _ z: Zone = file.zone) -> (RCode, [ResourceRecord])? {
        guard case .answer(let rcode, let an, _, _) = z.resolve(Question(name: F.name(n), type: t)) else { return nil }
        return (rcode, an)
    }

    @Test func clusterIPService() {
        #expect(Self.data("web" + svc) == [.a(F.ip("10.96.0.10"))])
        #expect(Self.data("_http._tcp.web" + svc) == [.srv(priority: 0, weight: 100, port: 80, target: F.name("web" + svc))])
        #expect(Self.data("_dns._udp.web" + svc) == [.srv(priority: 0, weight: 100, port: 53, target: F.name("web" + svc))])
        #expect(Self.data("10.0.96.10.in-addr.arpa") == [.ptr(F.name("web" + svc))])
        // No SRV for the unnamed port, anywhere.
        #expect(!Self.file.records.contains { if case .srv(_, _, 8080, _) = $0.data { return true }; return false })
        #expect(Self.file.records.filter { $0.name.isSubdomain(of: F.name("web" + svc)) }.count == 3)
        #expect(Self.data("_dns._udp.kube-dns.kube-system.svc.cluster.local").count == 1)
        #expect(Self.data("_dns-tcp._tcp.kube-dns.kube-system.svc.cluster.local") ==
            [.srv(priority: 0, weight: 100, port: 53, target: F.name("kube-dns.kube-system.svc.cluster.local"))])
    }

    @Test func headlessService() {
        let db = "db" + svc
        #expect(Self.data(db) == [.a(F.ip("10.244.1.5")), .a(F.ip("10.244.1.6"))])
        #expect(Self.data("db-0." + db) == [.a(F.ip("10.244.1.5"))]) // the hostname
        #expect(Self.data("10-244-1-6." + db) == [.a(F.ip("10.244.1.6"))]) // no hostname: the dashed address
        #expect(Self.data("_pg._tcp." + db) == [.srv(priority: 0, weight: 50, port: 5432, target: F.name("db-0." + db)),
                                                 .srv(priority: 0, weight: 50, port: 5432, target: F.name("10-244-1-6." + db))])
        #expect(Self.data("5.1.244.10.in-addr.arpa") == [.ptr(F.name("db-0." + db))])
        #expect(Self.data("6.1.244.10.in-addr.arpa") == [.ptr(F.name("10-244-1-6." + db))])
        // The not-ready endpoint has no record at all.
        #expect(Self.data("db-2." + db).isEmpty && Self.data("10-244-1-7." + db).isEmpty && Self.data("7.1.244.10.in-addr.arpa").isEmpty)
        #expect(!Self.file.records.contains { $0.data == .a(F.ip("10.244.1.7")) })
        // The unnamed port: no SRV; SRV per endpoint and named port on the big one.
        #expect(!Self.file.records.contains { if case .srv(_, _, 9999, _) = $0.data { return true }; return false })
        #expect(Self.data("_http._tcp.big" + svc).count == 100)
        // Answered: the A records, the SRV with the addresses in additional.
        #expect(Self.resolve(db, .a)?.1.count == 2)
    }

    @Test func headlessHostnamesSharedAndAddressesRepeated() throws {
        // Two endpoints with one hostname: an A record for each address (spec 2.4.1);
        // an address listed twice counts once.
        let s = ClusterRecords.Service(namespace: "default", name: "pets", clusterIP: nil, headless: true, externalName: nil,
                                       ports: [F.port("web", "SCTP", 80)],
                                       endpoints: [.init(ip: F.ip("10.244.5.1"), hostname: "pet", ready: true),
                                                   .init(ip: F.ip("10.244.5.2"), hostname: "pet", ready: true),
                                                   .init(ip: F.ip("10.244.5.2"), hostname: nil, ready: true)])
        let z = try ClusterRecords.zoneFile(F.input(services: [s]))
        #expect(Self.data("pets" + svc, in: z) == [.a(F.ip("10.244.5.1")), .a(F.ip("10.244.5.2"))])
        #expect(Self.data("pet.pets" + svc, in: z) == [.a(F.ip("10.244.5.1")), .a(F.ip("10.244.5.2"))])
        #expect(Self.data("1.5.244.10.in-addr.arpa", in: z) == [.ptr(F.name("pet.pets" + svc))])
        #expect(Self.data("2.5.244.10.in-addr.arpa", in: z) == [.ptr(F.name("pet.pets" + svc))])
        // The SRV name is _web._sctp; the zone holds the record once.
        let r = Responder(zone: z.zone)
        let m = try F.reply(r, F.query("_web._sctp.pets" + svc, .srv))
        #expect(m.answers.count == 1 && m.additional.count == 2)
    }

    @Test func headlessWithoutReadyEndpointsDoesNotExist() {
        #expect(Self.file.records.allSatisfy { !$0.name.isSubdomain(of: F.name("empty" + svc)) })
        #expect(Self.resolve("empty" + svc, .a)?.0 == .nxDomain)
        #expect(Self.resolve("_x._tcp.empty" + svc, .srv)?.0 == .nxDomain)
        #expect(Self.data("8.1.244.10.in-addr.arpa").isEmpty)
    }

    @Test func publishNotReadyAddresses() {
        #expect(Self.data("pub" + svc) == [.a(F.ip("10.244.1.9"))])
        #expect(Self.data("pub-0.pub" + svc) == [.a(F.ip("10.244.1.9"))])
        #expect(Self.data("_http._tcp.pub" + svc) == [.srv(priority: 0, weight: 100, port: 80, target: F.name("pub-0.pub" + svc))])
        #expect(Self.data("9.1.244.10.in-addr.arpa") == [.ptr(F.name("pub-0.pub" + svc))])
    }

    @Test func externalNameIsACNAME() {
        #expect(Self.data("ext" + svc) == [.cname(F.name("example.com"))])
        #expect(Self.file.records.filter { $0.name.isSubdomain(of: F.name("ext" + svc)) }.count == 1)
        #expect(Self.resolve("ext" + svc, .a)?.1 == [F.rr("ext" + svc, .cname, .cname(F.name("example.com")))])
    }

    @Test func theKubernetesAPIService() throws {
        let api = "kubernetes.default.svc.cluster.local"
        #expect(Self.data(api) == [.a(F.ip("10.96.0.1"))])
        #expect(Self.data("_https._tcp." + api) == [.srv(priority: 0, weight: 100, port: 443, target: F.name(api))])
        #expect(Self.data("1.0.96.10.in-addr.arpa") == [.ptr(F.name(api))])
        // A default/kubernetes service replaces them.
        let own = ClusterRecords.Service(namespace: "default", name: "kubernetes", clusterIP: F.ip("10.96.0.1"), headless: false,
                                         externalName: nil, ports: [F.port("https", "TCP", 6443)], endpoints: [])
        let z = try ClusterRecords.zoneFile(F.input(services: F.services + [own]))
        #expect(Self.data(api, in: z) == [.a(F.ip("10.96.0.1"))])
        #expect(Self.data("_https._tcp." + api, in: z) == [.srv(priority: 0, weight: 100, port: 6443, target: F.name(api))])
        #expect(Self.data("1.0.96.10.in-addr.arpa", in: z) == [.ptr(F.name(api))])
        // A kubernetes service in another namespace does not.
        var elsewhere = own
        elsewhere.namespace = "other"
        let z2 = try ClusterRecords.zoneFile(F.input(services: F.services + [elsewhere]))
        #expect(Self.data(api, in: z2).count == 1)
        #expect(Self.data("kubernetes.other.svc.cluster.local", in: z2).count == 1)
    }

    @Test func schemaVersion() {
        #expect(Self.data("dns-version.cluster.local") == [.txt([Array("1.1.0".utf8)])])
        #expect(ClusterRecords.schemaVersion == "1.1.0")
    }

    @Test func podPTRs() {
        #expect(Self.data("20.1.244.10.in-addr.arpa") == [.ptr(F.name("10-244-1-20.default.pod.cluster.local"))])
        #expect(Self.data("4.4.244.10.in-addr.arpa") == [.ptr(F.name("10-244-4-4.kube-system.pod.cluster.local"))])
        // A pod that is a headless endpoint keeps the service's name, once.
        #expect(Self.data("5.1.244.10.in-addr.arpa") == [.ptr(F.name("db-0.db" + svc))])
        // Every PTR name is unique.
        let ptrs = Self.file.records.filter { if case .ptr = $0.data { return true }; return false }.map { $0.name.key }
        #expect(Set(ptrs).count == ptrs.count)
    }

    @Test func customDomain() throws {
        let z = try ClusterRecords.zoneFile(F.input(domain: "k8s.test"))
        #expect(z.domain == F.name("k8s.test"))
        #expect(Self.data("web.default.svc.k8s.test", in: z) == [.a(F.ip("10.96.0.10"))])
        #expect(Self.data("dns-version.k8s.test", in: z).count == 1)
        #expect(Self.data("kubernetes.default.svc.k8s.test", in: z).count == 1)
        #expect(Self.data("20.1.244.10.in-addr.arpa", in: z) == [.ptr(F.name("10-244-1-20.default.pod.k8s.test"))])
        #expect(z.records.allSatisfy { !$0.name.isSubdomain(of: F.name("cluster.local")) })
        let r = Responder(zone: z.zone)
        #expect(try F.reply(r, F.query("web.default.svc.k8s.test", .a)).answers.count == 1)
        #expect(try F.reply(r, F.query("1-2-3-4.default.pod.k8s.test", .a)).answers == [F.rr("1-2-3-4.default.pod.k8s.test", .a, .a(F.ip("1.2.3.4")))])
        let nx = try F.reply(r, F.query("nope.default.svc.k8s.test", .a))
        #expect(nx.rcode == 3 && nx.authority.first?.name == F.name("k8s.test"))
        #expect(nx.authority.first?.data == .soa(mname: F.name("ns.dns.k8s.test"), rname: F.name("hostmaster.k8s.test"), serial: 1,
                                                refresh: 7200, retry: 1800, expire: 86400, minimum: 5))
        #expect(try F.reply(r, F.query("web.default.svc.cluster.local", .a)).rcode == 5)
        #expect(throws: DNSError.self) { try ClusterRecords.zoneFile(F.input(domain: "bad..domain")) }
        // A domain written in capitals is the same zone.
        let upper = Responder(zone: try ClusterRecords.zoneFile(F.input(domain: "K8S.Test")).zone)
        #expect(try F.reply(upper, F.query("web.default.svc.k8s.test", .a)).answers.count == 1)
        #expect(try F.reply(upper, F.query("nope.default.svc.k8s.TEST", .a)).rcode == 3)
        #expect(try F.reply(upper, F.query("x.nope.default.svc.k8s.test", .a)).rcode == 3)
        #expect(try F.reply(upper, F.query("svc.k8s.test", .a)).rcode == 0)
        #expect(try F.reply(upper, F.query("1-2-3-4.default.pod.k8s.test", .a)).answers.count == 1)
    }

    @Test func stableOrder() throws {
        var shuffled = F.input()
        shuffled.services.reverse()
        shuffled.pods.reverse()
        shuffled.namespaces.reverse()
        #expect(try ClusterRecords.zoneFile(shuffled).render() == Self.file.render())
    }
}

// MARK: - zone file

@Suite("DNSZoneFile: text form")
struct DNSZoneFileTests {
    @Test func renderParseRoundTrip() throws {
        var z = try ClusterRecords.zoneFile(F.input(upstreams: [Upstream(ip: F.ip("10.96.100.53")), Upstream(ip: F.ip("8.8.8.8"), port: 5353)]))
        z.serial = 42
        z.ttl = 30
        z.records.append((F.name("ns1.cluster.local"), .ns(F.name("a.b"))))
        z.records.append((F.name("multi.cluster.local"), .txt([Array("a".utf8), Array("b=c".utf8)])))
        let text = z.render()
        let back = try ZoneFile.parse(text)
        #expect(back == z)
        #expect(back.render() == text)
        #expect(back.domain == z.domain && back.ttl == 30 && back.serial == 42 && back.upstreams == z.upstreams)
        #expect(back.reverseRanges == z.reverseRanges && back.namespaces == z.namespaces)
        #expect(back.records.count == z.records.count)
        for (a, b) in zip(back.records, z.records) {
            #expect(a.name == b.name && a.data == b.data)
        }
        // The zones answer the same.
        let (zb, zz) = (back.zone, z.zone)
        for (n, _) in z.records {
            for t in [RRType.a, .srv, .ptr] {
                #expect(zb.resolve(Question(name: n, type: t)) == zz.resolve(Question(name: n, type: t)))
            }
        }
    }

    @Test func theDocumentedExampleParses() throws {
        let text = """
        minik-dns-zone 1                      # format version, first line
        domain cluster.local
        ttl 5
        serial 42
        upstream 10.96.100.53:53
        reverse 10.96.0.0/12
        namespace default

        A web.default.svc.cluster.local 10.96.0.5
        SRV _http._tcp.web.default.svc.cluster.local 0 100 80 web.default.svc.cluster.local
        CNAME db.default.svc.cluster.local db.example.test
        PTR 5.0.96.10.in-addr.arpa web.default.svc.cluster.local
        TXT dns-version.cluster.local 1.1.0
        """
        let z = try ZoneFile.parse(text)
        #expect(z.domain == F.name("cluster.local") && z.ttl == 5 && z.serial == 42)
        #expect(z.upstreams == [Upstream(ip: F.ip("10.96.100.53"))])
        #expect(z.reverseRanges == [IPv4CIDR("10.96.0.0/12")!] && z.namespaces == ["default"])
        #expect(z.records.map(\.data) == [.a(F.ip("10.96.0.5")), .srv(priority: 0, weight: 100, port: 80, target: F.name("web" + svc)),
                                          .cname(F.name("db.example.test")), .ptr(F.name("web" + svc)), .txt([Array("1.1.0".utf8)])])
        #expect(try ZoneFile.parse("minik-dns-zone 1\ndomain k8s.test\nupstream 1.1.1.1").upstreams == [Upstream(ip: F.ip("1.1.1.1"))])
    }

    @Test func errorsNameTheLine() {
        let head = "minik-dns-zone 1\ndomain cluster.local\n"
        for (text, line, phrase) in [
            ("", 0, "empty file"), ("# only a comment\n\n", 0, "empty file"),
            ("minik-dns-zone 2\n", 1, "expected"), ("\n\ndomain x\n", 3, "expected"),
            ("minik-dns-zone 1\nttl 5\n", 2, "\"domain\" must come before"), ("minik-dns-zone 1\n", 0, "no domain line"),
            (head + "ttl five", 3, "ttl SECONDS"), (head + "ttl -1", 3, "ttl SECONDS"), (head + "serial 4294967296", 3, "serial NUMBER"),
            (head + "upstream 10.0.0.1:0", 3, "upstream IP[:PORT]"), (head + "upstream", 3, "upstream IP[:PORT]"),
            (head + "upstream 10.0.0.256", 3, "upstream"), (head + "upstream a:b:c", 3, "upstream"),
            (head + "reverse 10.0.0.0/33", 3, "reverse CIDR"), (head + "reverse 10.0.0.0", 3, "reverse CIDR"),
            (head + "namespace", 3, "namespace NAME"),
            (head + "\n\n# comment\nA web 10.0.0.300", 6, "A NAME IPV4"), (head + "A web", 3, "A NAME IPV4"),
            (head + "A a..b 10.0.0.1", 3, "empty label"), (head + "A \(String(repeating: "x", count: 64)) 1.1.1.1", 3, "63 bytes"),
            (head + "CNAME a", 3, "CNAME NAME TARGET"), (head + "PTR a b c", 3, "PTR NAME TARGET"), (head + "CNAME a b..c", 3, "empty label"),
            (head + "SRV a 0 0 70000 b", 3, "SRV NAME PRIORITY WEIGHT PORT TARGET"), (head + "SRV a 0 0 80", 3, "SRV"),
            (head + "TXT a", 3, "TXT NAME TEXT"), (head + "MX a 10 b", 3, "unknown directive \"MX\""),
            (head + "A ok 1.1.1.1\ndomain", 4, "domain NAME"),
        ] {
            do {
                let z = try ZoneFile.parse(text)
                Issue.record("accepted \(text.debugDescription): \(z.render())")
            } catch {
                #expect(error.message.contains(phrase), "\(text.debugDescription): \(error.message)")
                if line > 0 { #expect(error.message.hasPrefix("zone line \(line):"), "\(text.debugDescription): \(error.message)") }
            }
        }
    }
}
