// A pod's /etc/resolv.conf, made as kubelet makes it (pkg/kubelet/network/dns/dns.go:
// GetPodDNS) and written in the order containerd's CRI writes it, which is what a kind
// user sees: search, nameserver lines, options.
//
//   ClusterFirst (and ClusterFirstWithHostNet: minik pods never use the host network)
//     nameserver = the cluster DNS service, search = <ns>.svc.<domain> svc.<domain> <domain>,
//     options ndots:5. With cluster DNS off, kubelet falls back to Default.
//   Default: the node's resolver. A minik node's is MinikConfig dns.upstream (the
//     upstreams on port 53: resolv.conf cannot name a port), with no search path.
//   None: nothing but dnsConfig.
// dnsConfig is then merged on top: nameservers and searches appended and de-duplicated
// (the policy's first), options merged by name with dnsConfig's value winning; then the
// resolver's limits (3 nameservers, 32 search domains of 2048 characters together).

public enum ResolvConf {
    /// The resolver's limits, which kubelet applies (and validation checks dnsConfig against).
    public static let maxNameservers = 3
    public static let maxSearches = 32
    public static let maxSearchCharacters = 2048
    /// Options of a ClusterFirst pod.
    public static let clusterFirstOptions = [DNSOption(name: "ndots", value: "5")]
    /// The line of a file that has no nameserver at all.
    public static let noResolverComment = "# minik: the node has no resolver (MinikConfig dns.upstream lists no address on port 53)"

    /// What a pod's resolv.conf says: nameservers, searches and options, as in dnsConfig.
    public typealias Config = PodDNSConfig

    /// The pod's DNS configuration: its policy's, with dnsConfig merged and the limits applied.
    public static func config(pod: PodSpec, cluster: ClusterSpec) -> Config {
        var c = Config()
        switch pod.dnsPolicy {
        case .clusterFirst, .clusterFirstWithHostNet:
            if let ip = cluster.dnsServiceIP {
                let domain = cluster.dns.clusterDomain
                c.nameservers = [ip]
                c.searches = ["\(pod.namespace).svc.\(domain)", "svc.\(domain)", domain]
                c.options = clusterFirstOptions
            } else {
                c = nodeResolver(cluster)
            }
        case .default:
            c = nodeResolver(cluster)
        case .none:
            break
        }
        if let extra = pod.dnsConfig {
            c.nameservers = unique(c.nameservers + extra.nameservers)
            c.searches = unique(c.searches + extra.searches)
            for o in extra.options {
                if let i = c.options.firstIndex(where: { $0.name == o.name }) { c.options[i].value = o.value } else { c.options.append(o) }
            }
        }
        c.nameservers = Array(c.nameservers.prefix(maxNameservers))
        c.searches = Array(c.searches.prefix(maxSearches))
        while c.searches.joined(separator: " ").utf8.count > maxSearchCharacters { c.searches.removeLast() }
        return c
    }

    /// The pod's /etc/resolv.conf.
    public static func render(pod: PodSpec, cluster: ClusterSpec) -> String {
        render(config(pod: pod, cluster: cluster))
    }

    public static func render(_ c: Config) -> String {
        var lines: [String] = []
        if c.nameservers.isEmpty { lines.append(noResolverComment) }
        if !c.searches.isEmpty { lines.append("search " + c.searches.joined(separator: " ")) }
        lines += c.nameservers.map { "nameserver \($0)" }
        if !c.options.isEmpty { lines.append("options " + c.options.map(\.text).joined(separator: " ")) }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A node's resolver: the upstreams a resolv.conf can name (port 53).
    static func nodeResolver(_ cluster: ClusterSpec) -> Config {
        Config(nameservers: unique(cluster.dns.upstreams.filter { $0.port == 53 }.map(\.ip)))
    }

    static func unique<T: Hashable>(_ items: [T]) -> [T] {
        var seen = Set<T>()
        return items.filter { seen.insert($0).inserted }
    }
}
