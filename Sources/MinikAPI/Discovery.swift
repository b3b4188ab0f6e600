// What the server serves, for discovery (/api, /apis, /api/v1, /apis/<group>/<version>,
// and the aggregated APIGroupDiscoveryList kubectl 1.32 asks for first) and for the
// minimal OpenAPI v3 documents that make `kubectl apply` and `create` send
// fieldValidation=Strict instead of validating on the client.
//
// Resources minik does not run (ReplicationControllers, DaemonSets, Jobs...) are listed
// with the read verbs only: lists of them are empty, as on a cluster without any, so
// `kubectl get all` and `cluster-info dump` work; creating one is refused.

public struct APIResource: Sendable {
    public var group: String
    public var version: String
    public var resource: String
    public var singular: String
    public var kind: String
    public var namespaced: Bool
    public var shortNames: [String]
    public var categories: [String]
    public var verbs: [String]
    public var subresources: [(name: String, kind: String, group: String, version: String, verbs: [String])]
    /// Served but always empty.
    public var empty: Bool

    public var groupVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    public var listKind: String { kind + "List" }
}

public enum Discovery {
    static let readVerbs = ["get", "list", "watch"]
    static let allVerbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

    static func r(_ group: String, _ resource: String, _ singular: String, _ kind: String, namespaced: Bool = true, short: [String] = [],
                  all: Bool = false, verbs: [String] = allVerbs, sub: [(String, String, String, String, [String])] = [], empty: Bool = false) -> APIResource {
        APIResource(group: group, version: "v1", resource: resource, singular: singular, kind: kind, namespaced: namespaced, shortNames: short,
                    categories: all ? ["all"] : [], verbs: verbs, subresources: sub.map { (name: $0.0, kind: $0.1, group: $0.2, version: $0.3, verbs: $0.4) }, empty: empty)
    }

    public static let resources: [APIResource] = [
        r("", "namespaces", "namespace", "Namespace", namespaced: false, short: ["ns"], verbs: ["create", "delete", "get", "list", "patch", "update", "watch"]),
        r("", "nodes", "node", "Node", namespaced: false, short: ["no"], verbs: readVerbs + ["patch"]),
        r("", "pods", "pod", "Pod", short: ["po"], all: true,
          sub: [("status", "Pod", "", "v1", ["get", "patch", "update"]), ("log", "Pod", "", "v1", ["get"]),
                ("exec", "PodExecOptions", "", "v1", ["create", "get"]), ("attach", "PodAttachOptions", "", "v1", ["create", "get"]),
                ("portforward", "PodPortForwardOptions", "", "v1", ["create", "get"]),
                ("ephemeralcontainers", "Pod", "", "v1", ["get", "patch", "update"])]),
        r("", "services", "service", "Service", short: ["svc"], all: true, sub: [("status", "Service", "", "v1", ["get", "patch", "update"])]),
        r("", "endpoints", "endpoints", "Endpoints", short: ["ep"], verbs: readVerbs),
        r("", "events", "event", "Event", short: ["ev"], verbs: readVerbs),
        r("", "configmaps", "configmap", "ConfigMap", short: ["cm"]),
        r("", "replicationcontrollers", "replicationcontroller", "ReplicationController", short: ["rc"], all: true, verbs: readVerbs, empty: true),
        r("", "secrets", "secret", "Secret", verbs: readVerbs, empty: true),
        r("", "serviceaccounts", "serviceaccount", "ServiceAccount", short: ["sa"], verbs: readVerbs, empty: true),
        r("", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", short: ["pvc"], verbs: readVerbs, empty: true),
        r("apps", "deployments", "deployment", "Deployment", short: ["deploy"], all: true,
          sub: [("scale", "Scale", "autoscaling", "v1", ["get", "patch", "update"]), ("status", "Deployment", "apps", "v1", ["get", "patch", "update"])]),
        r("apps", "replicasets", "replicaset", "ReplicaSet", short: ["rs"], all: true, verbs: readVerbs),
        r("apps", "daemonsets", "daemonset", "DaemonSet", short: ["ds"], all: true, verbs: readVerbs, empty: true),
        r("apps", "statefulsets", "statefulset", "StatefulSet", short: ["sts"], all: true, verbs: readVerbs, empty: true),
        r("batch", "jobs", "job", "Job", all: true, verbs: readVerbs, empty: true),
        r("batch", "cronjobs", "cronjob", "CronJob", short: ["cj"], all: true, verbs: readVerbs, empty: true),
        r("discovery.k8s.io", "endpointslices", "endpointslice", "EndpointSlice", verbs: readVerbs),
        r("networking.k8s.io", "networkpolicies", "networkpolicy", "NetworkPolicy", short: ["netpol"]),
    ]

    public static let groups = ["apps", "batch", "discovery.k8s.io", "networking.k8s.io"]

    public static func find(group: String, version: String, resource: String) -> APIResource? {
        resources.first { $0.group == group && $0.version == version && $0.resource == resource }
    }

    public static func find(kind: String, apiVersion: String) -> APIResource? {
        resources.first { $0.kind == kind && $0.groupVersion == apiVersion }
    }

    static func strings(_ a: [String]) -> JSON { .array(a.map { .string($0) }) }

    /// GET /api (APIVersions).
    public static func coreVersions(serverAddress: String) -> JSON {
        ["kind": "APIVersions", "versions": ["v1"],
         "serverAddressByClientCIDRs": [["clientCIDR": "0.0.0.0/0", "serverAddress": .string(serverAddress)]]]
    }

    /// GET /apis (APIGroupList).
    public static func groupList() -> JSON {
        ["kind": "APIGroupList", "apiVersion": "v1", "groups": .array(groups.map(group))]
    }

    public static func group(_ name: String) -> JSON {
        let gv: JSON = ["groupVersion": .string("\(name)/v1"), "version": "v1"]
        return ["kind": "APIGroup", "apiVersion": "v1", "name": .string(name), "versions": [gv], "preferredVersion": gv]
    }

    /// GET /api/v1 or /apis/<group>/v1 (APIResourceList); nil for a group minik does not serve.
    public static func resourceList(group: String, version: String) -> JSON? {
        let rs = resources.filter { $0.group == group && $0.version == version }
        guard !rs.isEmpty else { return nil }
        var items: [JSON] = []
        for r in rs {
            var o: JSON = ["name": .string(r.resource), "singularName": .string(r.singular), "namespaced": .bool(r.namespaced),
                           "kind": .string(r.kind), "verbs": strings(r.verbs)]
            if !r.shortNames.isEmpty { o["shortNames"] = strings(r.shortNames) }
            if !r.categories.isEmpty { o["categories"] = strings(r.categories) }
            items.append(o)
            for s in r.subresources {
                var so: JSON = ["name": .string("\(r.resource)/\(s.name)"), "singularName": "", "namespaced": .bool(r.namespaced),
                                "kind": .string(s.kind), "verbs": strings(s.verbs)]
                if !s.group.isEmpty { so["group"] = .string(s.group); so["version"] = .string(s.version) }
                items.append(so)
            }
        }
        return ["kind": "APIResourceList", "apiVersion": "v1", "groupVersion": .string(group.isEmpty ? version : "\(group)/\(version)"),
                "resources": .array(items)]
    }

    public static let aggregatedContentType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

    /// The aggregated discovery document of /api (core: true) or /apis.
    public static func aggregated(core: Bool) -> JSON {
        let names = core ? [""] : groups
        let items: [JSON] = names.map { g in
            let rs = resources.filter { $0.group == g }
            let list: [JSON] = rs.map { r in
                var o: JSON = ["resource": .string(r.resource), "singularResource": .string(r.singular),
                               "scope": .string(r.namespaced ? "Namespaced" : "Cluster"),
                               "responseKind": ["group": .string(r.group), "version": .string(r.version), "kind": .string(r.kind)],
                               "verbs": strings(r.verbs)]
                if !r.shortNames.isEmpty { o["shortNames"] = strings(r.shortNames) }
                if !r.categories.isEmpty { o["categories"] = strings(r.categories) }
                if !r.subresources.isEmpty {
                    o["subresources"] = .array(r.subresources.map { s in
                        ["subresource": .string(s.name), "responseKind": ["group": .string(s.group), "version": .string(s.version), "kind": .string(s.kind)],
                         "verbs": strings(s.verbs)]
                    })
                }
                return o
            }
            var meta: JSON = ["creationTimestamp": nil]
            if !g.isEmpty { meta["name"] = .string(g) }
            return ["metadata": meta, "versions": [["version": "v1", "resources": .array(list), "freshness": "Current"]]]
        }
        return ["kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": [:], "items": .array(items)]
    }

    // MARK: - OpenAPI v3

    static func path(_ g: String) -> String { g.isEmpty ? "api/v1" : "apis/\(g)/v1" }

    public static func openAPIHash(_ g: String) -> String {
        var h: UInt64 = 0xcbf29ce484222325
        for b in "\(APIVersionInfo.gitVersion)/\(g)".utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return String(h, radix: 16).uppercased()
    }

    /// GET /openapi/v3.
    public static func openAPIIndex() -> JSON {
        var paths: [String: JSON] = [:]
        for g in [""] + groups {
            paths[path(g)] = ["serverRelativeURL": .string("/openapi/v3/\(path(g))?hash=\(openAPIHash(g))")]
        }
        return ["paths": .object(paths)]
    }

    /// GET /openapi/v3/api/v1 (or a group's): a path per writable resource whose operations
    /// carry the group/version/kind and the fieldValidation parameter.
    public static func openAPIDocument(_ relative: String) -> JSON? {
        guard let g = ([""] + groups).first(where: { path($0) == relative }) else { return nil }
        let fieldValidation: JSON = ["name": "fieldValidation", "in": "query", "schema": ["type": "string", "uniqueItems": true],
                                     "description": "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."]
        var paths: [String: JSON] = [:]
        var schemas: [String: JSON] = [:]
        for r in resources where r.group == g {
            let gvk: JSON = ["group": .string(r.group), "version": .string(r.version), "kind": .string(r.kind)]
            let ref = "io.k8s.minik.\(r.group.isEmpty ? "core" : r.group).v1.\(r.kind)"
            schemas[ref] = ["type": "object", "x-kubernetes-group-version-kind": [gvk],
                            "description": .string("\(r.kind) as minik serves it.")]
            func op(_ name: String) -> JSON {
                ["operationId": .string("\(name)\(r.kind)"), "x-kubernetes-group-version-kind": gvk,
                 "x-kubernetes-action": .string(name), "parameters": [fieldValidation],
                 "responses": ["200": ["description": "OK", "content": ["application/json": ["schema": ["$ref": .string("#/components/schemas/\(ref)")]]]]]]
            }
            let prefix = "/\(path(g))/\(r.namespaced ? "namespaces/{namespace}/" : "")\(r.resource)"
            if r.verbs.contains("create") { paths[prefix] = ["post": op("create"), "get": op("list")] }
            if r.verbs.contains("patch") { paths[prefix + "/{name}"] = ["patch": op("patch"), "put": op("replace"), "get": op("read")] }
        }
        return ["openapi": "3.0.0", "info": ["title": "Kubernetes", "version": .string(APIVersionInfo.gitVersion)],
                "paths": .object(paths), "components": ["schemas": .object(schemas)]]
    }
}
