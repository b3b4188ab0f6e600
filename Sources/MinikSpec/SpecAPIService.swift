// The Kubernetes API's own Service, default/kubernetes, as every cluster has it: the
// service subnet's first address (10.96.0.1), port 443 (https) to the API server on the
// control-plane's underlay address, port 6443, as kind's control-plane serves it at
// 172.18.0.2:6443. It has no selector: its one endpoint is set by minik, as the
// apiserver sets it itself. The documents may not define a service of that name.

public enum APIService {
    public static let namespace = "default"
    public static let name = "kubernetes"
    public static var key: String { "\(namespace)/\(name)" }
    /// Where the API server listens inside the control-plane node.
    public static let port = 6443

    public static func spec(for cluster: ClusterSpec) -> ServiceSpec? {
        guard let cp = cluster.nodes.first(where: { $0.role == .controlPlane }) else { return nil }
        var s = ServiceSpec(namespace: namespace, name: name, source: SourceLocation(file: "minik", line: 0, column: 0, field: "default/kubernetes"))
        s.labels = ["component": "apiserver", "provider": "kubernetes"]
        s.clusterIP = cluster.serviceSubnet.address(1)
        s.ports = [ServicePort(name: "https", proto: "TCP", port: 443, targetPort: .number(port))]
        s.fixedEndpoints = [cp.internalIP]
        return s
    }
}

extension ClusterSpec {
    /// The cluster with the API's service (the runtime adds it to what the documents
    /// describe, as the apiserver makes it itself).
    public func withAPIService() -> ClusterSpec {
        guard !services.contains(where: { $0.key == APIService.key }), let api = APIService.spec(for: self) else { return self }
        var out = self
        out.services.append(api)
        return out
    }
}

extension Builder {
    /// Refuses documents that define default/kubernetes; each is left out.
    mutating func refuseAPIServiceName() {
        services = services.filter { raw in
            guard raw.spec.key == APIService.key else { return true }
            r.fail(raw.at, "service \(APIService.key) is the Kubernetes API's, made by minik; choose another name")
            return false
        }
    }
}
