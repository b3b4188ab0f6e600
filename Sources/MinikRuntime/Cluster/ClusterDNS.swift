// Cluster DNS in a running cluster: the records of the Kubernetes DNS schema, computed
// from the spec and the endpoints as the proxy sees them, written to
// <state dir>/dns/zone (atomically: a new file renamed over the old one), which the
// kube-system/minik-dns pods have mounted at /etc/minik-dns and reload through inotify.
// The services loop calls publishDNS on every change, before it syncs the proxy, from
// the same snapshot of the cluster.
import Foundation
import MinikDNS
import MinikSpec

extension ClusterRuntime {
    static func dnsInput(spec: ClusterSpec, services: [ServiceState], pods: [PodState]) -> ClusterRecords.Input {
        let specPods = Dictionary(spec.pods.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let records: [ClusterRecords.Service] = services.map { st in
            let s = st.spec
            // One record per pod address (the endpoints list has one entry per port), ready
            // if any of its entries is.
            var order: [IPv4Address] = []
            var byIP: [IPv4Address: ClusterRecords.Endpoint] = [:]
            for e in st.endpoints {
                if byIP[e.ip] == nil {
                    order.append(e.ip)
                    // The endpoints controller sets a hostname when the pod's subdomain is the service.
                    let p = specPods[e.pod]
                    byIP[e.ip] = ClusterRecords.Endpoint(ip: e.ip, hostname: p?.subdomain == s.name ? p?.hostname : nil, ready: e.ready)
                } else if e.ready {
                    byIP[e.ip]!.ready = true
                }
            }
            let endpoints = order.map { byIP[$0]! }
            return ClusterRecords.Service(
                namespace: s.namespace, name: s.name, clusterIP: s.clusterIP, headless: s.headless,
                externalName: s.type == .externalName ? s.externalName : nil,
                ports: s.ports.map { ClusterRecords.Port(name: $0.name, proto: $0.proto, port: $0.port) },
                endpoints: endpoints, publishNotReady: s.publishNotReadyAddresses)
        }
        return ClusterRecords.Input(
            domain: spec.dns.clusterDomain, ttl: UInt32(spec.dns.ttl),
            upstreams: spec.dns.upstreams.map { Upstream(ip: $0.ip, port: UInt16($0.port)) },
            serviceRange: spec.serviceSubnet, podRange: spec.podSubnet,
            apiServiceIP: spec.serviceSubnet.address(1), dnsServiceIP: spec.dnsServiceIP,
            namespaces: spec.namespaces, services: records,
            pods: pods.compactMap { p in p.ip.map { ClusterRecords.Pod(namespace: p.namespace, name: p.name, ip: $0) } })
    }

    /// Writes the zone when its records changed; the serial goes up with every change.
    /// Returns an error message, or nil.
    @discardableResult
    func publishDNS(_ snapshot: ServicesSnapshot? = nil) -> String? {
        guard spec.dns.enabled else { return nil }
        let now = snapshot ?? servicesSnapshot()
        let spec = now.spec
        var file: ZoneFile
        do {
            file = try ClusterRecords.zoneFile(ClusterRuntime.dnsInput(spec: spec, services: now.services, pods: now.pods))
        } catch {
            return "dns: \(error.message)"
        }
        file.serial = 0
        let body = file.render()
        if body == dnsZoneBody { return nil }
        file.serial = dnsSerial + 1
        let dir = Naming.dnsDir(spec.name)
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try file.render().write(toFile: "\(dir)/zone", atomically: true, encoding: .utf8)
        } catch {
            dnsStale = true
            return "dns: cannot write \(dir)/zone: \(error)"
        }
        dnsStale = false
        if file.skipped > 0 && file.skipped != dnsSkipped {
            FileHandle.standardError.write(Data("dns: \(file.skipped) records left out: their names are longer than 255 bytes\n".utf8))
        }
        dnsSkipped = file.skipped
        dnsSerial += 1
        dnsZoneBody = body
        return nil
    }
}
