// Every name and path minik gives to what it creates, in one place, so `up`, `down`,
// the CLI and the tests agree. Pure.
import MinikSpec

public enum Naming {
    /// Where each cluster keeps its state, supervisor socket and IPAM allocations.
    public static let stateRoot = "/run/minik"
    /// iproute2's directory of named network namespaces: `ip netns` lists what is here.
    public static let netnsDir = "/run/netns"

    public static func clusterDir(_ cluster: String) -> String { "\(stateRoot)/\(cluster)" }
    public static func stateFile(_ cluster: String) -> String { "\(clusterDir(cluster))/state.json" }
    public static func socketPath(_ cluster: String) -> String { "\(clusterDir(cluster))/supervisor.sock" }
    public static func logFile(_ cluster: String) -> String { "\(clusterDir(cluster))/supervisor.log" }
    /// The cluster DNS zone file's directory, mounted into the DNS pods.
    public static func dnsDir(_ cluster: String) -> String { "\(clusterDir(cluster))/dns" }
    public static func ipamDir(_ cluster: String, node: String) -> String { "\(clusterDir(cluster))/ipam/\(node)" }

    /// Every namespace of a cluster starts with this; `down` removes whatever does.
    /// Node and pod names are DNS labels (no dots), so the dots keep kinds apart.
    public static func netnsPrefix(_ cluster: String) -> String { "minik-\(cluster)." }
    public static func underlayNetns(_ cluster: String) -> String { "\(netnsPrefix(cluster))underlay" }
    public static func nodeNetns(_ cluster: String, node: String) -> String { "\(netnsPrefix(cluster))\(node)" }
    public static func podNetns(_ cluster: String, namespace: String, pod: String) -> String {
        "\(netnsPrefix(cluster))\(namespace).\(pod)"
    }
    public static func netnsPath(_ name: String) -> String { "\(netnsDir)/\(name)" }
    /// The external host: on the underlay, not a node (for NodePorts and externalIPs).
    public static func externalNetns(_ cluster: String) -> String { "\(netnsPrefix(cluster))external" }
    /// Its port on the underlay bridge.
    public static func externalPort(_ cluster: String) -> String { "\(cluster)-ext" }
    /// Its address: the last usable one of the underlay subnet (172.18.255.254).
    public static func externalHostIP(_ subnet: IPv4CIDR) -> IPv4Address { IPv4Address(subnet.broadcast.value - 1) }

    /// The underlay's bridge, inside the underlay namespace.
    public static func underlayBridge(_ cluster: String) -> String { "br-\(cluster)" }
    /// A node's port on the underlay bridge (its peer is eth0 in the node).
    public static func underlayPort(_ cluster: String, nodeIndex: Int) -> String { "\(cluster)-\(nodeIndex)" }

    public static let nodeUplink = "eth0"
    public static let podInterface = "eth0"
    public static let bridge = "cni0"
    public static let vxlanDevice = "flannel.1"
    public static let vxlanVNI: UInt32 = 1
    public static let vxlanPort: UInt16 = 8472

    /// The MAC of a node's flannel.1: fixed per node index, so every node can program its
    /// neighbours without asking (flannel publishes it in a node annotation instead).
    public static func vtepMAC(nodeIndex: Int) -> [UInt8] { [0x02, 0x6d, 0x6b, 0x00, UInt8(nodeIndex & 0xff), 0x01] }

    /// cni0's MAC, pinned like the CNI bridge plugin does (0a:58 + the gateway address) so
    /// it does not change as ports come and go.
    public static func bridgeMAC(gateway: IPv4Address) -> [UInt8] { [0x0a, 0x58] + gateway.octets }
    /// A pod's eth0 MAC, from its IP as the CNI bridge plugin made them (0a:58 + the four
    /// octets): the same after the sandbox is re-created, so no peer's ARP entry goes stale.
    public static func podMAC(_ ip: IPv4Address) -> [UInt8] { [0x0a, 0x58] + ip.octets }

    /// The host end of a pod's veth: "veth" + 8 hex digits of a hash of the pod's key, as
    /// the CNI plugins name them. `salt` resolves the rare collision within one node.
    public static func hostVeth(namespace: String, pod: String, salt: Int = 0) -> String {
        var h: UInt32 = 2_166_136_261
        for b in "\(namespace)/\(pod)#\(salt)".utf8 {
            h = (h ^ UInt32(b)) &* 16_777_619
        }
        let hex = String(h, radix: 16)
        return "veth" + String(repeating: "0", count: 8 - hex.count) + hex
    }
}

extension Naming {
    /// The cluster's certificates (CA, API server, admin).
    public static func pkiDir(_ cluster: String) -> String { "\(clusterDir(cluster))/pki" }
    /// The cluster's kubeconfig, as `minik get kubeconfig` prints it.
    public static func kubeconfigFile(_ cluster: String) -> String { "\(clusterDir(cluster))/kubeconfig" }
}
