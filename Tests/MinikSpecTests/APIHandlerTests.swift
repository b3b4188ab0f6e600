// The request router as kubectl meets it, without a socket: discovery (/version, /api,
// /apis with and without the aggregated APIGroupDiscoveryList, /api/v1 resource lists,
// the OpenAPI v3 index), reads (get, list with selectors and continue tokens, Tables,
// watch plans) and writes through a recording backend (create, replace, patch, scale,
// delete), with every error a Status carrying the apiserver's code, reason and message.
import Foundation
import MinikAPI
import Testing

/// What a backend was asked to do; writes fail with `rejectWith` when set. (Whether a
/// write is valid for the runtime, e.g. ValidatePodUpdate's "pod updates may not
/// change fields other than...", is the backend's to say: ClusterAPI in MinikSupervisor.)
final class APIRecordingBackend: APIBackend, @unchecked Sendable {
    struct Write {
        var object: JSON
        var resource: String
        var create: Bool
        var strict: Bool
    }

    private let lock = NSLock()
    private var _writes: [Write] = []
    private var _deletes: [ObjectKey] = []
    private var _scales: [String] = []
    private var _graces: [Int?] = []
    private var _orphans: [Bool] = []
    private var _refreshes = 0
    let rejectWith: APIError?
    let warnings: [String]
    /// Run after a delete is recorded (to change the store as the runtime would).
    let onDelete: (@Sendable (ObjectKey) -> Void)?

    init(rejectWith: APIError? = nil, warnings: [String] = [], onDelete: (@Sendable (ObjectKey) -> Void)? = nil) {
        self.rejectWith = rejectWith
        self.warnings = warnings
        self.onDelete = onDelete
    }

    var writes: [Write] { lock.lock(); defer { lock.unlock() }; return _writes }
    var deletes: [ObjectKey] { lock.lock(); defer { lock.unlock() }; return _deletes }
    /// The gracePeriodSeconds of each delete.
    var graces: [Int?] { lock.lock(); defer { lock.unlock() }; return _graces }
    var orphans: [Bool] { lock.lock(); defer { lock.unlock() }; return _orphans }
    /// "namespace/name=replicas" per call.
    var scales: [String] { lock.lock(); defer { lock.unlock() }; return _scales }
    var refreshes: Int { lock.lock(); defer { lock.unlock() }; return _refreshes }

    func refresh() {
        lock.lock(); _refreshes += 1; lock.unlock()
    }

    func logFile(namespace: String, pod: String, container: String?, previous: Bool) throws(APIError) -> LogPlan {
        LogPlan(path: "/logs/\(namespace)/\(pod)/\(container ?? "c")\(previous ? ".1" : "")", namespace: namespace, pod: pod, container: container ?? "c")
    }

    func delete(_ key: ObjectKey, gracePeriodSeconds: Int?, orphan: Bool) throws(APIError) {
        lock.lock(); _deletes.append(key); _graces.append(gracePeriodSeconds); _orphans.append(orphan); lock.unlock()
        onDelete?(key)
    }

    func scale(namespace: String, name: String, replicas: Int) throws(APIError) {
        lock.lock(); _scales.append("\(namespace)/\(name)=\(replicas)"); lock.unlock()
    }

    func write(_ object: JSON, resource: APIResource, create: Bool, strict: Bool) throws(APIError) -> [String] {
        lock.lock()
        _writes.append(Write(object: object, resource: resource.resource, create: create, strict: strict))
        lock.unlock()
        if let rejectWith { throw rejectWith }
        return warnings
    }
}

/// A pod as the server shows it: with the defaults ObjectsView fills in.
func apiServedPod(_ name: String, ns: String = "default", labels: [String: String], node: String?, phase: String,
                  image: String = "busybox") -> JSON {
    var spec: JSON = [
        "containers": [["name": "c", "image": .string(image), "args": ["sleep", "3600"], "imagePullPolicy": "IfNotPresent",
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": [:]]],
        "restartPolicy": "Always", "schedulerName": "default-scheduler", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default", "serviceAccount": "default", "securityContext": [:], "enableServiceLinks": true, "priority": 0,
        "preemptionPolicy": "PreemptLowerPriority",
        "tolerations": [["key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300],
                        ["key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300]],
    ]
    if let node { spec["nodeName"] = .string(node) }
    return ["apiVersion": "v1", "kind": "Pod",
            "metadata": ["name": .string(name), "namespace": .string(ns), "uid": .string("uid-\(name)"), "labels": .strings(labels),
                         "creationTimestamp": "2026-01-01T00:00:00Z"],
            "spec": spec, "status": ["phase": .string(phase)]]
}

/// A store with two namespaces, four pods, a Deployment and a Service.
func apiFixtureStore() -> ObjectStore {
    let store = ObjectStore()
    store.sync(resource: "namespaces", apiKeyed("namespaces", ["default", "kube-system"].map { n in
        ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(n), "labels": ["kubernetes.io/metadata.name": .string(n)]],
         "status": ["phase": "Active"]]
    }))
    store.sync(resource: "pods", apiKeyed("pods", [
        apiServedPod("web-1", labels: ["app": "web"], node: "lab-worker", phase: "Running"),
        apiServedPod("web-2", labels: ["app": "web"], node: "lab-worker2", phase: "Running"),
        apiServedPod("db-0", labels: ["app": "db"], node: nil, phase: "Pending"),
        apiServedPod("coredns-abc", ns: "kube-system", labels: ["k8s-app": "kube-dns"], node: "lab-control-plane", phase: "Running"),
    ]))
    let deployment: JSON = [
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": ["name": "web", "namespace": "default", "uid": "uid-web", "labels": ["app": "web"], "creationTimestamp": "2026-01-01T00:00:00Z"],
        "spec": ["replicas": 2, "selector": ["matchLabels": ["app": "web"]],
                 "template": ["metadata": ["labels": ["app": "web"]], "spec": ["containers": [["name": "c", "image": "busybox"]]]]],
        "status": ["observedGeneration": 1, "replicas": 2, "readyReplicas": 2],
    ]
    store.sync(resource: "deployments", apiKeyed("deployments", [deployment]))
    store.sync(resource: "services", apiKeyed("services", [[
        "apiVersion": "v1", "kind": "Service", "metadata": ["name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"],
        "spec": ["type": "ClusterIP", "clusterIP": "10.96.0.10", "selector": ["app": "web"], "ports": [["port": 80, "protocol": "TCP", "targetPort": 8080]]],
    ]]))
    return store
}

/// The parts of a JSON response; code -1 for a stream.
func apiJSON(_ r: APIResponse) -> (code: Int, body: JSON, contentType: String, warnings: [String]) {
    if case .json(let code, let body, let contentType, let warnings) = r { return (code, body, contentType, warnings) }
    return (-1, .null, "", [])
}

func apiNames(_ list: JSON) -> [String] {
    (list["items"]?.array ?? []).compactMap { $0[path: "metadata", "name"]?.string }
}

let tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
let aggregatedAccept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"

@Suite("API handler: discovery")
struct APIDiscoveryTests {
    let handler = APIHandler(store: apiFixtureStore(), backend: nil, serverAddress: "127.0.0.1:40123")

    func get(_ path: String, accept: String = "application/json") -> (code: Int, body: JSON, contentType: String, warnings: [String]) {
        apiJSON(handler.handle(APIRequest(method: "GET", path: path, accept: accept)))
    }

    @Test func version() {
        let r = get("/version")
        #expect(r.code == 200)
        #expect(r.body["gitVersion"] == "v1.32.0-minik")
        #expect(r.body["major"] == "1")
        #expect(r.body["minor"] == "32")
        #expect(r.body["platform"] == "linux/amd64")
    }

    @Test func coreAPIVersions() {
        let r = get("/api")
        #expect(r.code == 200)
        #expect(r.contentType == "application/json")
        #expect(r.body.text == #"{"kind":"APIVersions","serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:40123"}],"versions":["v1"]}"#)
    }

    @Test func aggregatedCoreDiscovery() throws {
        let r = get("/api", accept: aggregatedAccept)
        #expect(r.code == 200)
        #expect(r.contentType == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
        #expect(r.body["kind"] == "APIGroupDiscoveryList")
        #expect(r.body["apiVersion"] == "apidiscovery.k8s.io/v2")
        let items = r.body["items"]?.array ?? []
        try #require(items.count == 1)
        let version = try #require(items[0]["versions"]?.array?.first)
        #expect(version["version"] == "v1")
        #expect(version["freshness"] == "Current")
        let pods = try #require(version["resources"]?.array?.first { $0["resource"] == "pods" })
        #expect(pods["scope"] == "Namespaced")
        #expect(pods["singularResource"] == "pod")
        #expect(pods["shortNames"] == ["po"])
        #expect(pods["categories"] == ["all"])
        #expect(pods["responseKind"] == ["group": "", "version": "v1", "kind": "Pod"])
        #expect(pods["subresources"]?.array?.compactMap { $0["subresource"]?.string } == ["status", "log", "exec", "attach", "portforward", "ephemeralcontainers"])
        let exec = try #require(pods["subresources"]?.array?.first { $0["subresource"] == "exec" })
        #expect(exec["verbs"] == ["create", "get"] && exec["responseKind"]?["kind"] == "PodExecOptions")
        let nodes = try #require(version["resources"]?.array?.first { $0["resource"] == "nodes" })
        #expect(nodes["scope"] == "Cluster")
    }

    @Test func groups() throws {
        let plain = get("/apis")
        #expect(plain.body["kind"] == "APIGroupList")
        #expect(plain.body["groups"]?.array?.compactMap { $0["name"]?.string } == ["apps", "batch", "discovery.k8s.io", "networking.k8s.io"])
        #expect(plain.body["groups"]?.array?.first?["preferredVersion"] == ["groupVersion": "apps/v1", "version": "v1"])
        let agg = get("/apis", accept: aggregatedAccept)
        #expect(agg.contentType == Discovery.aggregatedContentType)
        #expect(agg.body["items"]?.array?.compactMap { $0[path: "metadata", "name"]?.string } == ["apps", "batch", "discovery.k8s.io", "networking.k8s.io"])
        let apps = get("/apis/apps")
        #expect(apps.body["kind"] == "APIGroup")
        #expect(apps.body["name"] == "apps")
        #expect(get("/apis/example.com").code == 404)
    }

    @Test func coreResourceList() throws {
        let r = get("/api/v1")
        #expect(r.code == 200)
        #expect(r.body["kind"] == "APIResourceList")
        #expect(r.body["groupVersion"] == "v1")
        let resources = r.body["resources"]?.array ?? []
        let pods = try #require(resources.first { $0["name"] == "pods" })
        #expect(pods["shortNames"] == ["po"])
        #expect(pods["categories"] == ["all"])
        #expect(pods["namespaced"] == true)
        #expect(pods["kind"] == "Pod")
        #expect(pods["singularName"] == "pod")
        #expect(pods["verbs"] == ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
        let log = try #require(resources.first { $0["name"] == "pods/log" })
        #expect(log["verbs"] == ["get"])
        let ns = try #require(resources.first { $0["name"] == "namespaces" })
        #expect(ns["namespaced"] == false)
        #expect(ns["shortNames"] == ["ns"])
        #expect(!resources.contains { $0["name"] == "deployments" })
        let rc = try #require(resources.first { $0["name"] == "replicationcontrollers" })
        #expect(rc["verbs"] == ["get", "list", "watch"])
    }

    @Test func appsResourceList() throws {
        let r = get("/apis/apps/v1")
        #expect(r.body["groupVersion"] == "apps/v1")
        let resources = r.body["resources"]?.array ?? []
        let d = try #require(resources.first { $0["name"] == "deployments" })
        #expect(d["shortNames"] == ["deploy"])
        #expect(d["categories"] == ["all"])
        let scale = try #require(resources.first { $0["name"] == "deployments/scale" })
        #expect(scale["group"] == "autoscaling")
        #expect(scale["version"] == "v1")
        #expect(scale["kind"] == "Scale")
        #expect(get("/apis/apps/v2").code == 404)
        #expect(get("/apis/example.com/v1").code == 404)
    }

    @Test func openAPIv3Index() throws {
        let r = get("/openapi/v3")
        #expect(r.code == 200)
        let paths = try #require(r.body["paths"]?.object)
        #expect(paths.keys.sorted() == ["api/v1", "apis/apps/v1", "apis/batch/v1", "apis/discovery.k8s.io/v1", "apis/networking.k8s.io/v1"])
        let url = try #require(paths["api/v1"]?["serverRelativeURL"]?.string)
        #expect(url == "/openapi/v3/api/v1?hash=\(Discovery.openAPIHash(""))")
        #expect(paths["apis/apps/v1"]?["serverRelativeURL"]?.string?.hasPrefix("/openapi/v3/apis/apps/v1?hash=") == true)
        // Each group's document: what `kubectl create` looks for to send fieldValidation.
        let apps = get("/openapi/v3/apis/apps/v1")
        #expect(apps.code == 200)
        let post = try #require(apps.body[path: "paths", "/apis/apps/v1/namespaces/{namespace}/deployments", "post"])
        #expect(post["x-kubernetes-group-version-kind"] == ["group": "apps", "version": "v1", "kind": "Deployment"])
        #expect(post["parameters"]?.array?.first?["name"] == "fieldValidation")
        #expect(apps.body[path: "paths", "/apis/apps/v1/namespaces/{namespace}/replicasets"] == nil)
        let core = get("/openapi/v3/api/v1")
        #expect(core.body[path: "paths", "/api/v1/namespaces", "post"] != nil)
        #expect(core.body[path: "paths", "/api/v1/namespaces/{namespace}/pods/{name}", "patch"] != nil)
        #expect(get("/openapi/v3/apis/example.com/v1").code == 404)
    }

    @Test func healthAndUnknownPaths() {
        #expect(get("/healthz").code == 200)
        #expect(get("/readyz").body == "ok")
        let r = get("/metrics")
        #expect(r.code == 404)
        #expect(r.body["message"] == "the server could not find the requested resource")
    }
}

@Suite("API handler: reads")
struct APIReadTests {
    let store = apiFixtureStore()
    var handler: APIHandler { APIHandler(store: store, backend: nil, serverAddress: "127.0.0.1:6443") }

    func get(_ path: String, _ query: [String: String] = [:], accept: String = "application/json") -> (code: Int, body: JSON, contentType: String, warnings: [String]) {
        apiJSON(handler.handle(APIRequest(method: "GET", path: path, query: query, accept: accept)))
    }

    @Test func getAPod() {
        let r = get("/api/v1/namespaces/default/pods/web-1")
        #expect(r.code == 200)
        #expect(r.body[path: "metadata", "name"] == "web-1")
        #expect(r.body[path: "metadata", "resourceVersion"] == store.get(ObjectKey("pods", "default", "web-1"))?[path: "metadata", "resourceVersion"])
        #expect(r.body[path: "spec", "nodeName"] == "lab-worker")
    }

    @Test func aMissingPodIsAStatus404() {
        let r = get("/api/v1/namespaces/default/pods/x")
        #expect(r.code == 404)
        #expect(r.body.text == #"{"apiVersion":"v1","code":404,"details":{"group":"","kind":"pods","name":"x"},"kind":"Status","message":"pods \"x\" not found","metadata":{},"reason":"NotFound","status":"Failure"}"#)
        // In another namespace, the same name is another object.
        #expect(get("/api/v1/namespaces/kube-system/pods/web-1").code == 404)
        let d = get("/apis/apps/v1/namespaces/default/deployments/x")
        #expect(d.body["message"] == #"deployments.apps "x" not found"#)
        #expect(d.body[path: "details", "group"] == "apps")
    }

    @Test func unknownResourcesAndShapesAre404() {
        for path in ["/api/v1/namespaces/default/widgets", "/api/v1/widgets", "/apis/apps/v1/namespaces/default/pods",
                     "/api/v1/namespaces/default/pods/web-1/exe", "/api/v1/namespaces/default/nodes", "/api/v2/pods",
                     "/api/v1/namespaces/default/pods/web-1/log/extra"] {
            let r = get(path)
            #expect(r.code == 404, "\(path)")
            #expect(r.body["reason"] == "NotFound", "\(path)")
            #expect(r.body["kind"] == "Status", "\(path)")
        }
    }

    @Test func listsWithSelectors() {
        let all = get("/api/v1/namespaces/default/pods")
        #expect(all.code == 200)
        #expect(all.body["kind"] == "PodList")
        #expect(all.body["apiVersion"] == "v1")
        #expect(all.body[path: "metadata", "resourceVersion"] == .string(String(store.currentRevision)))
        #expect(apiNames(all.body) == ["db-0", "web-1", "web-2"])
        #expect(apiNames(get("/api/v1/namespaces/default/pods", ["labelSelector": "app=web"]).body) == ["web-1", "web-2"])
        #expect(apiNames(get("/api/v1/namespaces/default/pods", ["labelSelector": "app in (db),!missing"]).body) == ["db-0"])
        #expect(apiNames(get("/api/v1/namespaces/default/pods", ["fieldSelector": "spec.nodeName=lab-worker"]).body) == ["web-1"])
        #expect(apiNames(get("/api/v1/namespaces/default/pods", ["fieldSelector": "status.phase!=Running"]).body) == ["db-0"])
        #expect(apiNames(get("/api/v1/namespaces/default/pods", ["labelSelector": "app=web", "fieldSelector": "metadata.name=web-2"]).body) == ["web-2"])
        // Every namespace.
        #expect(apiNames(get("/api/v1/pods").body) == ["db-0", "web-1", "web-2", "coredns-abc"])
        // A namespace without pods (or that does not exist) lists nothing.
        #expect(apiNames(get("/api/v1/namespaces/nope/pods").body) == [])
        let d = get("/apis/apps/v1/deployments")
        #expect(d.body["kind"] == "DeploymentList")
        #expect(d.body["apiVersion"] == "apps/v1")
        #expect(apiNames(d.body) == ["web"])
    }

    @Test func limitAndContinuePageThroughAList() throws {
        let first = get("/api/v1/namespaces/default/pods", ["limit": "1"])
        #expect(apiNames(first.body) == ["db-0"])
        #expect(first.body[path: "metadata", "remainingItemCount"] == 2)
        let token1 = try #require(first.body[path: "metadata", "continue"]?.string)
        let second = get("/api/v1/namespaces/default/pods", ["limit": "1", "continue": token1])
        #expect(apiNames(second.body) == ["web-1"])
        let token2 = try #require(second.body[path: "metadata", "continue"]?.string)
        let last = get("/api/v1/namespaces/default/pods", ["limit": "1", "continue": token2])
        #expect(apiNames(last.body) == ["web-2"])
        #expect(last.body[path: "metadata", "continue"] == nil)
        #expect(last.body[path: "metadata", "remainingItemCount"] == nil)
        // A limit at least the list's size: no token.
        #expect(get("/api/v1/namespaces/default/pods", ["limit": "3"]).body[path: "metadata", "continue"] == nil)
        let bad = get("/api/v1/namespaces/default/pods", ["continue": "not base64!"])
        #expect(bad.code == 400)
        #expect(bad.body["reason"] == "BadRequest")
    }

    @Test func pagingAcrossNamespacesWhoseNamesArePrefixesOfEachOther() throws {
        // The store sorts by (namespace, name), the continue token compares
        // "namespace/name" strings: "a-b/x" sorts before "a/z" as a string ('-' < '/'),
        // so the page after a/z skips a-b/x.
        let store = ObjectStore()
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "z", ns: "a"), apiObject("Pod", "x", ns: "a-b")]))
        let handler = APIHandler(store: store, backend: nil, serverAddress: "")
        var names: [String] = []
        var token: String?
        for _ in 0..<4 {
            var q = ["limit": "1"]
            if let token { q["continue"] = token }
            let page = apiJSON(handler.handle(APIRequest(method: "GET", path: "/api/v1/pods", query: q))).body
            names += apiNames(page)
            token = page[path: "metadata", "continue"]?.string
            if token == nil { break }
        }
        do {
            #expect(names.sorted() == ["x", "z"])
        }
    }

    @Test func emptyResourcesListNothingWithTheirListKind() {
        let rc = get("/api/v1/namespaces/default/replicationcontrollers")
        #expect(rc.code == 200)
        #expect(rc.body.text.contains(#""items":[]"#))
        #expect(rc.body["kind"] == "ReplicationControllerList")
        #expect(rc.body["apiVersion"] == "v1")
        let jobs = get("/apis/batch/v1/jobs")
        #expect(jobs.body["kind"] == "JobList")
        #expect(jobs.body["apiVersion"] == "batch/v1")
        #expect(jobs.body["items"] == [])
        #expect(get("/apis/apps/v1/namespaces/default/daemonsets").body["kind"] == "DaemonSetList")
    }

    @Test func aWatchQueryReturnsAPlan() throws {
        let r = handler.handle(APIRequest(method: "GET", path: "/api/v1/namespaces/default/pods",
                                          query: ["watch": "true", "resourceVersion": "3", "labelSelector": "app=web",
                                                  "allowWatchBookmarks": "true", "timeoutSeconds": "99999"]))
        guard case .watch(let plan) = r else {
            Issue.record("not a watch: \(r)")
            return
        }
        #expect(plan.filter.resource == "pods")
        #expect(plan.filter.namespace == "default")
        let web = try LabelSelector.parse("app=web")
        #expect(plan.filter.labels == web)
        #expect(plan.from == 3)
        #expect(plan.bookmarks)
        #expect(!plan.table)
        #expect(plan.timeoutSeconds == 3600)
        guard case .watch(let p2) = handler.handle(APIRequest(method: "GET", path: "/api/v1/pods", query: ["watch": "1"], accept: tableAccept)) else {
            Issue.record("not a watch")
            return
        }
        #expect(p2.from == nil)
        #expect(p2.filter.namespace == nil)
        #expect(p2.table)
        #expect(p2.includeObject == "Metadata")
        #expect(p2.timeoutSeconds == 1800)
        #expect(!p2.bookmarks)
        let bad = apiJSON(handler.handle(APIRequest(method: "GET", path: "/api/v1/pods", query: ["watch": "true", "resourceVersion": "abc"])))
        #expect(bad.code == 400)
        #expect(bad.body["message"] == #"invalid resource version "abc""#)
    }

    @Test func badSelectorsAre400() {
        let l = get("/api/v1/namespaces/default/pods", ["labelSelector": "a in x"])
        #expect(l.code == 400)
        #expect(l.body["reason"] == "BadRequest")
        #expect(l.body["message"] == "unable to parse requirement: expected '('")
        let f = get("/api/v1/namespaces/default/pods", ["fieldSelector": "spec.foo=bar"])
        #expect(f.code == 400)
        #expect(f.body["message"] == "field label not supported: spec.foo")
        // Also for a watch.
        #expect(apiJSON(handler.handle(APIRequest(method: "GET", path: "/api/v1/pods", query: ["watch": "true", "labelSelector": "=x"]))).code == 400)
    }

    @Test func writesWithoutABackendAre405() {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let path = method == "POST" ? "/api/v1/namespaces/default/pods" : "/api/v1/namespaces/default/pods/web-1"
            let r = apiJSON(handler.handle(APIRequest(method: method, path: path, contentType: "application/json", body: Array("{}".utf8))))
            #expect(r.code == 405, "\(method)")
            #expect(r.body["reason"] == "MethodNotAllowed", "\(method)")
        }
        #expect(get("/api/v1/namespaces/default/pods/web-1/log").code == 405)
        #expect(apiJSON(handler.handle(APIRequest(method: "OPTIONS", path: "/api/v1/pods"))).code == 405)
    }

    @Test func tablesForListsAndSingleObjects() throws {
        let list = get("/api/v1/namespaces/default/pods", ["labelSelector": "app=web"], accept: tableAccept)
        #expect(list.code == 200)
        #expect(list.body["kind"] == "Table")
        #expect(list.body["apiVersion"] == "meta.k8s.io/v1")
        let rows = list.body["rows"]?.array ?? []
        #expect(rows.compactMap { $0["cells"]?.array?.first?.string } == ["web-1", "web-2"])
        #expect(rows.first?[path: "object", "kind"] == "PartialObjectMetadata")
        #expect(list.body[path: "metadata", "resourceVersion"] == .string(String(store.currentRevision)))
        let one = get("/api/v1/namespaces/default/pods/db-0", ["includeObject": "Object"], accept: tableAccept)
        #expect(one.body["kind"] == "Table")
        let row = try #require(one.body["rows"]?.array?.first)
        #expect(row["cells"]?.array?.prefix(3).map { $0.string ?? "" } == ["db-0", "0/1", "Pending"])
        #expect(row[path: "object", "kind"] == "Pod")
        let paged = get("/api/v1/namespaces/default/pods", ["limit": "2"], accept: tableAccept)
        #expect(paged.body[path: "metadata", "continue"] != nil)
        #expect(paged.body[path: "metadata", "remainingItemCount"] == 1)
    }

    @Test func aDeploymentsScale() {
        let r = get("/apis/apps/v1/namespaces/default/deployments/web/scale")
        #expect(r.code == 200)
        #expect(r.body["kind"] == "Scale")
        #expect(r.body["apiVersion"] == "autoscaling/v1")
        #expect(r.body[path: "spec", "replicas"] == 2)
        #expect(r.body[path: "status", "replicas"] == 2)
        #expect(r.body[path: "status", "selector"] == "app=web")
        #expect(r.body[path: "metadata", "name"] == "web")
    }

    @Test func watchLinesAreJSONLinesAndTablesCarryColumnsOnlyFirst() throws {
        let pod = try #require(store.get(ObjectKey("pods", "default", "web-1")))
        let replay = try store.watch(ObjectFilter(resource: "pods", fields: try FieldSelector.parse("metadata.name=web-1", resource: "pods")), from: nil) { _ in }
        store.cancel(watch: replay.id)
        let e = try #require(replay.replay.first)
        guard case .watch(let plain) = handler.handle(APIRequest(method: "GET", path: "/api/v1/pods", query: ["watch": "true"])) else {
            Issue.record("not a watch")
            return
        }
        let line = APIHandler.watchLine(e, plan: plain, first: true)
        #expect(line.last == 10)
        let v = try JSON.parse(Array(line.dropLast()))
        #expect(v["type"] == "ADDED")
        #expect(v["object"] == pod)
        var table = plain
        table.table = true
        let first = try JSON.parse(Array(APIHandler.watchLine(e, plan: table, first: true).dropLast()))
        #expect(first[path: "object", "kind"] == "Table")
        #expect(first[path: "object", "columnDefinitions"]?.array?.count == 9)
        let later = try JSON.parse(Array(APIHandler.watchLine(e, plan: table, first: false).dropLast()))
        #expect(later[path: "object", "columnDefinitions"] == [])
        #expect(later[path: "object", "rows"]?.array?.count == 1)
        let bookmark = APIHandler.bookmark(42, plan: table)
        let b = try JSON.parse(Array(APIHandler.watchLine(bookmark, plan: table, first: false).dropLast()))
        #expect(b.text == #"{"object":{"apiVersion":"v1","kind":"Pod","metadata":{"resourceVersion":"42"}},"type":"BOOKMARK"}"#)
    }

    @Test func requestURIsSplitAsGoParsesQueries() {
        let (path, query) = APIRequest.split("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=500&limit=1&watch")
        #expect(path == "/api/v1/namespaces/default/pods")
        #expect(query == ["labelSelector": "app=web,tier in (a)", "limit": "500", "watch": ""])
        #expect(APIRequest.split("/api/v1/namespaces/a%20b/pods").path == "/api/v1/namespaces/a b/pods")
        #expect(APIRequest.split("/version").query.isEmpty)
    }
}

@Suite("API handler: writes through the backend")
struct APIWriteTests {
    let store = apiFixtureStore()

    func send(_ backend: APIRecordingBackend, _ method: String, _ path: String, _ body: JSON, contentType: String = "application/json",
              query: [String: String] = [:]) -> (code: Int, body: JSON, contentType: String, warnings: [String]) {
        let handler = APIHandler(store: store, backend: backend, serverAddress: "127.0.0.1:6443")
        return apiJSON(handler.handle(APIRequest(method: method, path: path, query: query, contentType: contentType, body: body.serialized())))
    }

    func newPod(_ name: String, extra: JSON = [:]) -> JSON {
        var o: JSON = ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": .string(name)],
                       "spec": ["containers": [["name": "c", "image": "busybox"]]]]
        for (k, v) in extra.object ?? [:] { o[k] = v }
        return o
    }

    @Test func creatingAPodCallsTheBackend() throws {
        let backend = APIRecordingBackend(warnings: ["spec.hostAliases: ignored by minik"])
        let r = send(backend, "POST", "/api/v1/namespaces/default/pods", newPod("new"))
        #expect(r.code == 201)
        #expect(r.warnings == ["spec.hostAliases: ignored by minik"])
        let w = try #require(backend.writes.first)
        #expect(backend.writes.count == 1)
        #expect(w.resource == "pods")
        #expect(w.create)
        // Without fieldValidation the apiserver warns (kubectl sends Strict; the Python client nothing).
        #expect(!w.strict)
        // The namespace of the URL is written into the object.
        #expect(w.object[path: "metadata", "namespace"] == "default")
        #expect(w.object[path: "metadata", "name"] == "new")
        #expect(backend.refreshes == 1)
    }

    @Test func fieldValidationOtherThanStrictIsNotStrict() throws {
        for (value, strict) in [("Strict", true), ("Warn", false), ("Ignore", false)] {
            let backend = APIRecordingBackend()
            _ = send(backend, "POST", "/api/v1/namespaces/default/pods", newPod("new"), query: ["fieldValidation": value])
            #expect(backend.writes.first?.strict == strict, "\(value)")
        }
    }

    @Test func creatingAnExistingNameIs409AlreadyExists() {
        let backend = APIRecordingBackend()
        let r = send(backend, "POST", "/api/v1/namespaces/default/pods", newPod("web-1"))
        #expect(r.code == 409)
        #expect(r.body["reason"] == "AlreadyExists")
        #expect(r.body["message"] == #"pods "web-1" already exists"#)
        #expect(r.body["details"] == ["name": "web-1", "group": "", "kind": "pods"])
        #expect(backend.writes.isEmpty)
        let d = send(backend, "POST", "/apis/apps/v1/namespaces/default/deployments",
                     ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": "web"]])
        #expect(d.body["message"] == #"deployments.apps "web" already exists"#)
    }

    @Test func createErrorsBeforeTheBackend() {
        let backend = APIRecordingBackend()
        let mismatch = send(backend, "POST", "/api/v1/namespaces/default/pods", newPod("p", extra: ["metadata": ["name": "p", "namespace": "kube-system"]]))
        #expect(mismatch.code == 400)
        #expect(mismatch.body["message"] == "the namespace of the provided object does not match the namespace sent on the request")
        let noNamespace = send(backend, "POST", "/api/v1/namespaces/nope/pods", newPod("p"))
        #expect(noNamespace.code == 404)
        #expect(noNamespace.body["message"] == #"namespaces "nope" not found"#)
        let wrongKind = send(backend, "POST", "/api/v1/namespaces/default/pods", newPod("p", extra: ["kind": "Service"]))
        #expect(wrongKind.code == 400)
        #expect(wrongKind.body["message"] == #"the object provided is unrecognized (must be of type Pod): kind "Service""#)
        let wrongVersion = send(backend, "POST", "/api/v1/namespaces/default/pods", newPod("p", extra: ["apiVersion": "apps/v1"]))
        #expect(wrongVersion.code == 400)
        let noName = send(backend, "POST", "/api/v1/namespaces/default/pods", newPod("", extra: ["metadata": [:]]))
        #expect(noName.code == 422)
        #expect(noName.body["reason"] == "Invalid")
        #expect(noName.body["message"] == #"Pod "" is invalid: metadata.name: Required value: name or generateName is required"#)
        let notJSON = apiJSON(APIHandler(store: store, backend: backend, serverAddress: "")
            .handle(APIRequest(method: "POST", path: "/api/v1/namespaces/default/pods", contentType: "application/json", body: Array("kind: Pod".utf8))))
        #expect(notJSON.code == 400)
        let onAName = send(backend, "POST", "/api/v1/namespaces/default/pods/web-1", newPod("web-1"))
        #expect(onAName.code == 405)
        let readOnly = send(backend, "POST", "/api/v1/namespaces/default/secrets", ["apiVersion": "v1", "kind": "Secret", "metadata": ["name": "c"]])
        #expect(readOnly.code == 405)
        #expect(backend.writes.isEmpty)
    }

    @Test func aCreateOfANamespacedKindNeedsANamespaceInThePath() {
        // /api/v1/pods serves only list and watch for a namespaced resource: the
        // apiserver answers a POST there 405. Here the object reaches the backend without
        // a namespace (which writes it into "default") and the AlreadyExists check, made
        // under the empty namespace, misses default/web-1.
        let backend = APIRecordingBackend()
        let r = send(backend, "POST", "/api/v1/pods", newPod("web-1"))
        do {
            #expect(r.code == 405)
            #expect(backend.writes.isEmpty)
        }
    }

    @Test func generateNameGivesFiveMoreCharacters() throws {
        let backend = APIRecordingBackend()
        let r = send(backend, "POST", "/api/v1/namespaces/default/pods", newPod("", extra: ["metadata": ["generateName": "web-"]]))
        #expect(r.code == 201)
        let name = try #require(backend.writes.first?.object[path: "metadata", "name"]?.string)
        #expect(name.hasPrefix("web-"))
        #expect(name.count == 9)
        #expect(name.dropFirst(4).allSatisfy { "bcdfghjklmnpqrstvwxz2456789".contains($0) })
        #expect(backend.writes.first?.object[path: "metadata", "generateName"] == nil)
    }

    @Test func dryRunWritesNothing() {
        let backend = APIRecordingBackend()
        let r = send(backend, "POST", "/api/v1/namespaces/default/pods", newPod("new"), query: ["dryRun": "All"])
        #expect(r.code == 201)
        #expect(r.body[path: "metadata", "name"] == "new")
        #expect(backend.writes.isEmpty)
    }

    @Test func aStrictCreateTheBackendRejectsPropagatesItsError() {
        let error = APIError(400, "BadRequest", #"strict decoding error: unknown field "spec.containers[0].imagePullPolicyy""#)
        let backend = APIRecordingBackend(rejectWith: error)
        let r = send(backend, "POST", "/api/v1/namespaces/default/pods", newPod("new"), query: ["fieldValidation": "Strict"])
        #expect(r.code == 400)
        #expect(r.body["kind"] == "Status")
        #expect(r.body["reason"] == "BadRequest")
        #expect(r.body["message"] == #"strict decoding error: unknown field "spec.containers[0].imagePullPolicyy""#)
        #expect(backend.writes.count == 1)
        #expect(backend.writes.first?.strict == true)
        #expect(backend.refreshes == 0)
        let invalid = APIRecordingBackend(rejectWith: APIError(422, "Invalid", "Pod \"new\" is invalid: spec.containers[0].image: Required value"))
        #expect(send(invalid, "POST", "/api/v1/namespaces/default/pods", newPod("new")).code == 422)
    }

    @Test func aStaleResourceVersionIs409Conflict() throws {
        let backend = APIRecordingBackend()
        var pod = try #require(store.get(ObjectKey("pods", "default", "web-1")))
        pod["metadata"]?["resourceVersion"] = "1"
        pod["metadata"]?["labels"]?["tier"] = "fe"
        let r = send(backend, "PUT", "/api/v1/namespaces/default/pods/web-1", pod)
        #expect(r.code == 409)
        #expect(r.body["reason"] == "Conflict")
        #expect(r.body["message"] == #"Operation cannot be fulfilled on pods "web-1": the object has been modified; please apply your changes to the latest version and try again"#)
        #expect(backend.writes.isEmpty)
        // The same for a patch naming a resourceVersion.
        let p = send(backend, "PATCH", "/api/v1/namespaces/default/pods/web-1", ["metadata": ["resourceVersion": "1", "labels": ["tier": "fe"]]],
                     contentType: "application/merge-patch+json")
        #expect(p.code == 409)
        #expect(backend.writes.isEmpty)
    }

    @Test func aCurrentResourceVersionIsWritten() throws {
        let backend = APIRecordingBackend()
        var pod = try #require(store.get(ObjectKey("pods", "default", "web-1")))
        pod["metadata"]?["labels"]?["tier"] = "fe"
        let r = send(backend, "PUT", "/api/v1/namespaces/default/pods/web-1", pod)
        #expect(r.code == 200)
        let w = try #require(backend.writes.first)
        #expect(!w.create)
        #expect(w.object[path: "metadata", "labels"] == ["app": "web", "tier": "fe"])
    }

    @Test func replacingOrPatchingAMissingObjectIs404() {
        let backend = APIRecordingBackend()
        #expect(send(backend, "PUT", "/api/v1/namespaces/default/pods/nope", newPod("nope")).code == 404)
        #expect(send(backend, "PATCH", "/api/v1/namespaces/default/pods/nope", ["metadata": ["labels": ["a": "b"]]],
                     contentType: "application/merge-patch+json").code == 404)
        #expect(backend.writes.isEmpty)
    }

    @Test func aPatchOfAnUnsupportedContentTypeIs415() {
        let backend = APIRecordingBackend()
        let r = send(backend, "PATCH", "/api/v1/namespaces/default/pods/web-1", ["metadata": ["labels": ["a": "b"]]], contentType: "application/json")
        #expect(r.code == 415)
        #expect(r.body["reason"] == "UnsupportedMediaType")
        #expect(backend.writes.isEmpty)
    }

    @Test func aBodyOver3MiBIs413() {
        let backend = APIRecordingBackend()
        let handler = APIHandler(store: store, backend: backend, serverAddress: "")
        let big = [UInt8](repeating: 32, count: 3 * 1024 * 1024 + 1)
        let r = apiJSON(handler.handle(APIRequest(method: "POST", path: "/api/v1/namespaces/default/pods", contentType: "application/json", body: big)))
        #expect(r.code == 413)
        #expect(r.body["reason"] == "RequestEntityTooLarge")
        // 3 MiB exactly is read (and these spaces are no JSON).
        let limit = apiJSON(handler.handle(APIRequest(method: "POST", path: "/api/v1/namespaces/default/pods", contentType: "application/json",
                                                      body: [UInt8](repeating: 32, count: 3 * 1024 * 1024))))
        #expect(limit.code == 400)
        #expect(backend.writes.isEmpty)
    }

    @Test func scalingADeploymentThroughItsScaleSubresource() throws {
        let backend = APIRecordingBackend()
        // `kubectl scale deployment web --replicas=3`.
        let r = send(backend, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale", ["spec": ["replicas": 3]],
                     contentType: "application/merge-patch+json")
        #expect(r.code == 200)
        #expect(r.body["kind"] == "Scale")
        #expect(backend.scales == ["default/web=3"])
        #expect(backend.refreshes == 1)
        #expect(backend.writes.isEmpty)
        // PUT of a Scale.
        _ = send(backend, "PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale",
                 ["kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": ["name": "web"], "spec": ["replicas": 0]])
        #expect(backend.scales == ["default/web=3", "default/web=0"])
        let negative = send(backend, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale", ["spec": ["replicas": -1]],
                            contentType: "application/merge-patch+json")
        #expect(negative.code == 422)
        #expect(negative.body["message"] == #"Deployment "web" is invalid: spec.replicas: Invalid value: must be a number from 0 to 10000"#)
        let missing = send(backend, "PATCH", "/apis/apps/v1/namespaces/default/deployments/nope/scale", ["spec": ["replicas": 1]],
                           contentType: "application/merge-patch+json")
        #expect(missing.code == 404)
        #expect(backend.scales.count == 2)
    }

    @Test func aPodUpdateGoesToTheBackendWhoseRefusalIsTheAnswer() throws {
        // The runtime's rule (ValidatePodUpdate) lives in the backend: what it refuses is
        // answered as it words it, and nothing else happens.
        let forbidden = APIError(422, "Invalid", #"Pod "web-1" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"#,
                                 details: ["name": "web-1", "group": "", "kind": "Pod", "causes": [["reason": "FieldValueForbidden", "field": "spec"]]])
        let refusing = APIRecordingBackend(rejectWith: forbidden)
        let r = send(refusing, "PATCH", "/api/v1/namespaces/default/pods/web-1", ["spec": ["containers": [["name": "c", "args": ["sleep", "1"]]]]],
                     contentType: "application/strategic-merge-patch+json")
        #expect(r.code == 422)
        #expect(r.body["reason"] == "Invalid")
        #expect(r.body["message"]?.string?.contains("Forbidden: pod updates may not change fields other than") == true)
        #expect(r.body[path: "details", "causes"]?.array?.first?["reason"] == "FieldValueForbidden")
        #expect(refusing.refreshes == 0)
        // The backend is given the whole patched pod, as an update.
        let w = try #require(refusing.writes.first)
        #expect(!w.create)
        #expect(w.resource == "pods")
        #expect(w.object[path: "spec", "containers"]?.array?.first?["args"] == ["sleep", "1"])
        #expect(w.object[path: "spec", "containers"]?.array?.first?["image"] == "busybox")
        #expect(w.object[path: "spec", "nodeName"] == "lab-worker")
        // `kubectl set image pod/web-1 c=nginx`.
        let backend = APIRecordingBackend()
        let ok = send(backend, "PATCH", "/api/v1/namespaces/default/pods/web-1", ["spec": ["containers": [["name": "c", "image": "nginx"]]]],
                      contentType: "application/strategic-merge-patch+json")
        #expect(ok.code == 200)
        let set = try #require(backend.writes.first)
        #expect(set.object[path: "spec", "containers"]?.array?.first?["image"] == "nginx")
        #expect(set.object[path: "spec", "containers"]?.array?.first?["args"] == ["sleep", "3600"])
        #expect(backend.refreshes == 1)
        // Labels may change freely.
        let labels = send(backend, "PATCH", "/api/v1/namespaces/default/pods/web-1", ["metadata": ["labels": ["tier": "fe"]]],
                          contentType: "application/merge-patch+json")
        #expect(labels.code == 200)
        #expect(backend.writes.count == 2)
        #expect(backend.writes.last?.object[path: "metadata", "labels"] == ["app": "web", "tier": "fe"])
    }

    @Test func anUnchangedReplaceWritesNothing() throws {
        let backend = APIRecordingBackend()
        let pod = try #require(store.get(ObjectKey("pods", "default", "web-1")))
        let r = send(backend, "PUT", "/api/v1/namespaces/default/pods/web-1", pod)
        #expect(r.code == 200)
        #expect(r.body == pod)
        // Nor does a patch that changes only status or server metadata.
        let p = send(backend, "PATCH", "/api/v1/namespaces/default/pods/web-1", ["status": ["phase": "Failed"], "metadata": ["generation": 9]],
                     contentType: "application/merge-patch+json")
        #expect(p.code == 200)
        #expect(p.body == pod)
        let d = try #require(store.get(ObjectKey("deployments", "default", "web")))
        #expect(send(backend, "PUT", "/apis/apps/v1/namespaces/default/deployments/web", d).code == 200)
        #expect(backend.writes.isEmpty)
        #expect(backend.refreshes == 0)
    }

    @Test func statusIsNotWritable() {
        let backend = APIRecordingBackend()
        let r = send(backend, "PATCH", "/api/v1/namespaces/default/pods/web-1/status", ["status": ["phase": "Failed"]], contentType: "application/merge-patch+json")
        #expect(r.code == 405)
        #expect(backend.writes.isEmpty)
    }

    @Test func deletingCallsTheBackendAndShowsTheObjectTerminating() {
        let backend = APIRecordingBackend()
        let r = send(backend, "DELETE", "/api/v1/namespaces/default/pods/web-1", [:])
        #expect(r.code == 200)
        #expect(r.body[path: "metadata", "name"] == "web-1")
        #expect(r.body[path: "metadata", "deletionTimestamp"]?.string != nil)
        #expect(backend.deletes == [ObjectKey("pods", "default", "web-1")])
        #expect(backend.refreshes == 1)
        let stale = send(backend, "DELETE", "/api/v1/namespaces/default/pods/web-2", ["preconditions": ["uid": "other"]])
        #expect(stale.code == 409)
        #expect(stale.body["message"] == "Precondition failed: UID in precondition: other, UID in object meta: uid-web-2")
        #expect(send(backend, "DELETE", "/api/v1/namespaces/default/pods/nope", [:]).code == 404)
        #expect(send(backend, "DELETE", "/api/v1/namespaces/default/endpoints/web", [:]).code == 405)
        #expect(backend.deletes.count == 1)
    }
    @Test func gracePeriodsFromTheQueryOrTheBody() {
        let backend = APIRecordingBackend()
        #expect(send(backend, "DELETE", "/api/v1/namespaces/default/pods/web-1", [:]).code == 200)
        #expect(send(backend, "DELETE", "/api/v1/namespaces/default/pods/web-1", ["kind": "DeleteOptions", "gracePeriodSeconds": 5]).code == 200)
        // `kubectl delete --now` / `--grace-period=0`: the query wins over the body.
        #expect(send(backend, "DELETE", "/api/v1/namespaces/default/pods/web-1", ["gracePeriodSeconds": 5], query: ["gracePeriodSeconds": "0"]).code == 200)
        #expect(backend.graces == [nil, 5, 0])
        let negative = send(backend, "DELETE", "/api/v1/namespaces/default/pods/web-1", [:], query: ["gracePeriodSeconds": "-1"])
        #expect(negative.code == 422)
        #expect(negative.body["message"] == "gracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0")
        #expect(backend.deletes.count == 3)
    }

    @Test func orphanPropagationReachesTheBackend() {
        let backend = APIRecordingBackend()
        let path = "/apis/apps/v1/namespaces/default/deployments/web"
        #expect(send(backend, "DELETE", path, ["kind": "DeleteOptions", "propagationPolicy": "Background"]).code == 200)
        #expect(send(backend, "DELETE", path, ["kind": "DeleteOptions", "propagationPolicy": "Orphan"]).code == 200)
        #expect(send(backend, "DELETE", path, ["orphanDependents": true]).code == 200)
        let bad = send(backend, "DELETE", path, ["propagationPolicy": "Sometimes"])
        #expect(bad.code == 422)
        #expect(bad.body["message"]?.string?.contains("supported values: \"Foreground\", \"Background\", \"Orphan\"") == true)
        #expect(backend.orphans == [false, true, true])
    }

    @Test func aPodStillTerminatingIsAnsweredAsItIsNow() throws {
        let store = self.store
        var terminating = try #require(store.get(ObjectKey("pods", "default", "web-1")))
        terminating["metadata"]?["resourceVersion"] = nil
        terminating["metadata"]?["deletionTimestamp"] = "2026-01-01T00:10:30Z"
        terminating["metadata"]?["deletionGracePeriodSeconds"] = 30
        let replacement = terminating
        let backend = APIRecordingBackend(onDelete: { key in
            // The store as the runtime describes it next: the same pods, this one terminating.
            var pods: [ObjectKey: JSON] = [:]
            for o in store.list(ObjectFilter(resource: "pods")).items {
                var c = o
                c["metadata"]?["resourceVersion"] = nil
                pods[ObjectKey("pods", o[path: "metadata", "namespace"]?.string ?? "", o[path: "metadata", "name"]?.string ?? "")] = c
            }
            pods[key] = replacement
            store.sync(resource: "pods", pods)
        })
        let r = send(backend, "DELETE", "/api/v1/namespaces/default/pods/web-1", [:])
        #expect(r.code == 200)
        #expect(r.body[path: "metadata", "deletionTimestamp"] == "2026-01-01T00:10:30Z")
        #expect(r.body[path: "metadata", "deletionGracePeriodSeconds"] == 30)
        #expect(r.body[path: "metadata", "resourceVersion"] == .string(String(store.currentRevision)))
    }

    @Test func deletingACollectionDeletesWhatTheSelectorMatches() {
        let backend = APIRecordingBackend()
        let handler = APIHandler(store: store, backend: backend, serverAddress: "")
        let r = apiJSON(handler.handle(APIRequest(method: "DELETE", path: "/api/v1/namespaces/default/pods", query: ["labelSelector": "app=web"])))
        #expect(r.code == 200)
        #expect(r.body["kind"] == "PodList")
        #expect(apiNames(r.body) == ["web-1", "web-2"])
        #expect(backend.deletes == [ObjectKey("pods", "default", "web-1"), ObjectKey("pods", "default", "web-2")])
    }

    @Test func logsArePlannedForTheBackendsFile() {
        let backend = APIRecordingBackend()
        let handler = APIHandler(store: store, backend: backend, serverAddress: "")
        let r = handler.handle(APIRequest(method: "GET", path: "/api/v1/namespaces/default/pods/web-1/log",
                                          query: ["follow": "true", "tailLines": "10", "container": "c", "previous": "true"]))
        guard case .logs(let plan) = r else {
            Issue.record("not a log plan: \(r)")
            return
        }
        #expect(plan.path == "/logs/default/web-1/c.1")
        #expect(plan.follow)
        #expect(plan.tailLines == 10)
        #expect(plan.limitBytes == nil)
        #expect(apiJSON(handler.handle(APIRequest(method: "GET", path: "/api/v1/namespaces/default/pods/nope/log"))).code == 404)
    }
}
