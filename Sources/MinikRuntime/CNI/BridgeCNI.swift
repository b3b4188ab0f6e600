// The built-in bridge CNI, shaped like the containernetworking bridge plugin:
// ensureBridge (cni0 holding the node's gateway address) and setupVeth (a veth pair per
// pod, created in place: the pod end is born inside the pod's namespace as eth0, the host
// end is enslaved to cni0 in the same request, in hairpin mode), then the pod's address
// and default route. eth0's MAC comes from the pod's IP (0a:58:<ip>), so a re-created
// sandbox keeps its MAC with its IP and no neighbour entry of a peer goes stale; it is
// announced with gratuitous ARPs all the same (announce), as the CNI bridge plugin does.
// The kernel's own (arp_notify) goes out the moment eth0 comes up, before the bridge has
// enabled the host end's port, and is lost.
import CMinik
import Foundation
import MinikNetlink
import MinikSpec

public enum BridgeCNI {
    /// cni0 in the node: a bridge with the first address of the podCIDR, pinned MAC,
    /// the pod MTU, up. Returns its ifindex.
    public static func ensureBridge(node: NetNamespace, podCIDR: IPv4CIDR, mtu: Int) throws(RuntimeError) -> Int32 {
        let sock = try node.netlink
        let gateway = podCIDR.address(1)
        let ctx = "\(node.name): cni0"
        do {
            try sock.linkAdd(LinkSpec(name: Naming.bridge, kind: .bridge, mtu: mtu,
                                      address: MACAddress(Naming.bridgeMAC(gateway: gateway)), up: true))
        } catch let e where e.isExists {
            // ensure: an existing cni0 must be a bridge; anything else is replaced.
            let info = try nl(ctx) { () throws(NetlinkError) in try sock.linkGet(name: Naming.bridge) }
            if info?.kind != "bridge" {
                try nl(ctx) { () throws(NetlinkError) in try sock.linkDel(name: Naming.bridge) }
                return try ensureBridge(node: node, podCIDR: podCIDR, mtu: mtu)
            }
        } catch {
            throw .netlink(error, context: ctx)
        }
        guard let info = try nl(ctx, { () throws(NetlinkError) in try sock.linkGet(name: Naming.bridge) }) else {
            throw .state("\(ctx) vanished after it was created")
        }
        do {
            try sock.addrAdd(index: info.index, address: gateway.networkOrder, prefix: 24)
        } catch let e where e.isExists {
        } catch {
            throw .netlink(error, context: ctx)
        }
        return info.index
    }

    /// The pod's network: veth pair (host end `hostVeth` on cni0, pod end eth0 inside the
    /// pod), lo and eth0 up, the pod's address, default route via the gateway.
    public static func setupVeth(node: NetNamespace, bridgeIndex: Int32, pod: NetNamespace, hostVeth: String,
                                 address: IPv4Address, podCIDR: IPv4CIDR, mtu: Int, hairpin: Bool = true,
                                 randomMAC: Bool = false) throws(RuntimeError) {
        // A random MAC (locally administered, unicast) is what plugins that do not pin
        // it give a re-created sandbox; minik's own comes from the IP.
        var random = SystemRandomNumberGenerator()
        let mac = randomMAC ? [0x0a] + (0..<5).map { _ in UInt8.random(in: 0...255, using: &random) } : Naming.podMAC(address)
        let nodeSock = try node.netlink
        try nl("\(node.name): veth for \(pod.name)") { () throws(NetlinkError) in
            let spec = LinkSpec(
                name: hostVeth,
                kind: .veth(peer: VethPeer(name: Naming.podInterface, namespaceFD: pod.fd, mtu: mtu,
                                           address: MACAddress(mac))),
                mtu: mtu, masterIndex: bridgeIndex, up: true)
            do throws(NetlinkError) {
                try nodeSock.linkAdd(spec)
            } catch let e where e.isExists {
                // The host end of an earlier pod of this name, whose namespace is gone but
                // which the kernel has not freed yet (pods are deleted without deleting
                // their veths one by one): remove it and make the pair again.
                try nodeSock.linkDel(name: hostVeth)
                try nodeSock.linkAdd(spec)
            }
            // hairpinMode: a pod reaching itself through a service gets its packets back
            // (a spec may turn it off: examples/bugs/hairpin-off.yaml).
            guard hairpin else { return }
            guard let host = try nodeSock.linkGet(name: hostVeth) else { throw NetlinkError("ip link show \(hostVeth)", errno: ENODEV) }
            try nodeSock.bridgePortHairpin(index: host.index)
        }
        let podSock = try pod.netlink
        let ctx = "pod \(pod.name)"
        try nl(ctx) { () throws(NetlinkError) in
            try podSock.linkSetUp(index: 1) // lo is always ifindex 1
            guard let eth0 = try podSock.linkGet(name: Naming.podInterface) else {
                throw NetlinkError("ip link show eth0", errno: ENODEV)
            }
            try podSock.addrAdd(index: eth0.index, address: address.networkOrder, prefix: podCIDR.prefix)
            try podSock.linkSetUp(index: eth0.index)
            try podSock.routeAdd(RouteSpec(destination: 0, prefix: 0, gateway: podCIDR.address(1).networkOrder,
                                           outputIndex: eth0.index))
        }
    }

    /// Gratuitous ARPs (who-has IP tell IP, from the pod's MAC) out of the pod's eth0, at
    /// once and twice more within half a second, while the bridge port comes up.
    public static func announce(pod netnsPath: String, address: IPv4Address) {
        for delay in [0.0, 0.15, 0.5] {
            DispatchQueue.global().asyncAfter(deadline: .now() + delay) {
                let fd = open(netnsPath, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { return }
                defer { close(fd) }
                var mac = Naming.podMAC(address)
                let ip = address.octets
                _ = mac.withUnsafeMutableBufferPointer { m in
                    minik_send_garp(fd, Naming.podInterface, m.baseAddress, ip[0], ip[1], ip[2], ip[3])
                }
            }
        }
    }
}
