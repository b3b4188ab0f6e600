// The Kubernetes DNS schema (kubernetes/dns docs/specification.md, version 1.1.0):
// which records a cluster's services, endpoints and pods make. Pure: the supervisor fills
// ClusterRecords.Input from its state and writes the result as the zone file.
//
//   <svc>.<ns>.svc.<zone>              A      the ClusterIP; for a headless service every
//                                             ready endpoint (none: the name does not exist)
//   <host>.<svc>.<ns>.svc.<zone>       A      each ready endpoint of a headless service:
//                                             <host> is the pod's hostname when its
//                                             subdomain is the service, else a-b-c-d
//   _<port>._<proto>.<svc>.<ns>.svc.<zone> SRV  each named port (per endpoint if headless)
//   <svc>.<ns>.svc.<zone>              CNAME  an ExternalName service's name
//   <d>.<c>.<b>.<a>.in-addr.arpa       PTR    ClusterIPs, headless endpoints, every pod
//   kubernetes.default.svc.<zone>      A      the first service address (the API service)
//   dns-version.<zone>                 TXT    "1.1.0"
//   ns.dns.<zone>                      A      the DNS service (the SOA's and NS's name server)
//   a-b-c-d.<ns>.pod.<zone>            A      answered by the server for any address

public enum ClusterRecords {
    public static let schemaVersion = "1.1.0"

    public struct Port: Sendable {
        public var name: String
        public var proto: String
        public var port: Int
        public init(name: String, proto: String, port: Int) {
            self.name = name
            self.proto = proto
            self.port = port
        }
    }

    public struct Endpoint: Sendable {
        public var ip: IPv4Address
        /// The pod's hostname when its subdomain names this service.
        public var hostname: String?
        public var ready: Bool
        public init(ip: IPv4Address, hostname: String?, ready: Bool) {
            self.ip = ip
            self.hostname = hostname
            self.ready = ready
        }
    }

    public struct Service: Sendable {
        public var namespace: String
        public var name: String
        public var clusterIP: IPv4Address?
        public var headless: Bool
        public var externalName: String?
        public var ports: [Port]
        public var endpoints: [Endpoint]
        /// publishNotReadyAddresses: not-ready endpoints get records too.
        public var publishNotReady: Bool
        public init(namespace: String, name: String, clusterIP: IPv4Address?, headless: Bool, externalName: String?, ports: [Port],
                    endpoints: [Endpoint], publishNotReady: Bool = false) {
            self.namespace = namespace
            self.name = name
            self.clusterIP = clusterIP
            self.headless = headless
            self.externalName = externalName
            self.ports = ports
            self.endpoints = endpoints
            self.publishNotReady = publishNotReady
        }
    }

    public struct Pod: Sendable {
        public var namespace: String
        public var name: String
        public var ip: IPv4Address
        public init(namespace: String, name: String, ip: IPv4Address) {
            self.namespace = namespace
            self.name = name
            self.ip = ip
        }
    }

    public struct Input: Sendable {
        public var domain: String
        public var ttl: UInt32
        public var upstreams: [Upstream]
        public var serviceRange: IPv4CIDR
        public var podRange: IPv4CIDR
        /// The kubernetes.default service address (the first of the service range).
        public var apiServiceIP: IPv4Address
        /// The cluster DNS service's address: ns.dns.<zone>, the zone's name server.
        public var dnsServiceIP: IPv4Address?
        public var namespaces: [String]
        public var services: [Service]
        public var pods: [Pod]
        public init(domain: String, ttl: UInt32, upstreams: [Upstream], serviceRange: IPv4CIDR, podRange: IPv4CIDR,
                    apiServiceIP: IPv4Address, dnsServiceIP: IPv4Address? = nil, namespaces: [String], services: [Service], pods: [Pod]) {
            self.dnsServiceIP = dnsServiceIP
            self.domain = domain
            self.ttl = ttl
            self.upstreams = upstreams
            self.serviceRange = serviceRange
            self.podRange = podRange
            self.apiServiceIP = apiServiceIP
            self.namespaces = namespaces
            self.services = services
            self.pods = pods
        }
    }

    static func dashed(_ ip: IPv4Address) -> String { ip.octets.map { String($0) }.joined(separator: "-") }

    /// The zone file for a cluster. Records come out in a stable order (services by
    /// namespace and name), so an unchanged cluster renders the same bytes.
    public static func zoneFile(_ input: Input) throws(DNSError) -> ZoneFile {
        let domain = try DNSName(input.domain)
        var z = ZoneFile(domain: domain)
        z.ttl = input.ttl
        z.upstreams = input.upstreams
        z.reverseRanges = [input.serviceRange, input.podRange]
        z.namespaces = input.namespaces.sorted()
        let svcZone = domain.prepending("svc")
        var ptrDone = Set<IPv4Address>()
        // A name over 255 bytes (a long domain with long names) cannot be served: left out,
        // so that it does not make the whole zone unreadable.
        func add(_ name: DNSName, _ data: RData) {
            var target: DNSName?
            switch data {
            case .cname(let t), .ptr(let t), .ns(let t): target = t
            case .srv(_, _, _, let t): target = t
            default: target = nil
            }
            guard name.wireLength <= DNSName.maxWireLength, (target?.wireLength ?? 0) <= DNSName.maxWireLength else {
                z.skipped += 1
                return
            }
            z.records.append((name, data))
        }
        func ptr(_ ip: IPv4Address, _ target: DNSName) {
            if ptrDone.insert(ip).inserted { add(ip.reverseName, .ptr(target)) }
        }

        add(domain.prepending("dns-version"), .txt([Array(schemaVersion.utf8)]))
        if let ip = input.dnsServiceIP { add(domain.prepending("dns").prepending("ns"), .a(ip)) }
        let api = svcZone.prepending("default").prepending("kubernetes")
        if !input.services.contains(where: { $0.namespace == "default" && $0.name == "kubernetes" }) {
            add(api, .a(input.apiServiceIP))
            add(api.prepending("_tcp").prepending("_https"), .srv(priority: 0, weight: 100, port: 443, target: api))
            ptr(input.apiServiceIP, api)
        }
        for s in input.services.sorted(by: { ($0.namespace, $0.name) < ($1.namespace, $1.name) }) {
            let name = svcZone.prepending(s.namespace).prepending(s.name)
            if let ext = s.externalName {
                add(name, .cname(try DNSName(ext)))
                continue
            }
            let named = s.ports.filter { !$0.name.isEmpty }
            if !s.headless, let ip = s.clusterIP {
                add(name, .a(ip))
                for p in named {
                    add(name.prepending("_\(p.proto.lowercased())").prepending("_\(p.name)"),
                        .srv(priority: 0, weight: 100, port: UInt16(p.port), target: name))
                }
                ptr(ip, name)
                continue
            }
            // Headless: one record per ready endpoint address.
            var seen = Set<IPv4Address>()
            let eps = s.endpoints.filter { ($0.ready || s.publishNotReady) && seen.insert($0.ip).inserted }
            let hosts = eps.map { e in name.prepending(e.hostname ?? dashed(e.ip)) }
            for e in eps { add(name, .a(e.ip)) }
            for (e, host) in zip(eps, hosts) { add(host, .a(e.ip)) }
            let weight = UInt16(max(1, 100 / max(1, eps.count)))
            for p in named {
                let srv = name.prepending("_\(p.proto.lowercased())").prepending("_\(p.name)")
                for host in hosts { add(srv, .srv(priority: 0, weight: weight, port: UInt16(p.port), target: host)) }
            }
            for (e, host) in zip(eps, hosts) { ptr(e.ip, host) }
        }
        for p in input.pods.sorted(by: { $0.ip < $1.ip }) {
            ptr(p.ip, domain.prepending("pod").prepending(p.namespace).prepending(dashed(p.ip)))
        }
        return z
    }
}
