// The API's request handling, apart from any socket: a request (method, path, query,
// Accept, body) in, a response out, or a plan for a stream (a watch, a log follow) that
// the transport carries out. Paths as the apiserver routes them:
//   /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]
//   /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]
// Every error is a Status object with the apiserver's reason and code.
import Foundation
import MinikRuntime
import Yams

public struct APIRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [String: String]
    public var accept: String
    public var contentType: String
    public var body: [UInt8]
    public var user: String
    /// The request's target as sent (repeated parameters such as exec's `command` are
    /// only there).
    public var uri: String

    public init(method: String, path: String, query: [String: String] = [:], accept: String = "application/json",
                contentType: String = "", body: [UInt8] = [], user: String = "kubernetes-admin", uri: String? = nil) {
        self.uri = uri ?? path
        self.method = method
        self.path = path
        self.query = query
        self.accept = accept
        self.contentType = contentType
        self.body = body
        self.user = user
    }

    /// Splits "/path?a=b&c=d" (percent-decoded, + as space as Go's url.ParseQuery does).
    public static func split(_ uri: String) -> (path: String, query: [String: String]) {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var q: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let k = decode(String(kv[0])), v = kv.count > 1 ? decode(String(kv[1])) : ""
                if q[k] == nil { q[k] = v }
            }
        }
        return (decode(String(parts[0]), plus: false), q)
    }

    static func decode(_ s: String, plus: Bool = true) -> String {
        let t = plus ? s.replacingOccurrences(of: "+", with: " ") : s
        return t.removingPercentEncoding ?? t
    }
}

public struct APIError: Error, Sendable {
    public var code: Int
    public var reason: String
    public var message: String
    public var details: JSON?

    public init(_ code: Int, _ reason: String, _ message: String, details: JSON? = nil) {
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
    }

    public static func notFound(_ resource: String, _ name: String, group: String = "") -> APIError {
        let what = group.isEmpty ? resource : "\(resource).\(group)"
        return APIError(404, "NotFound", "\(what) \"\(name)\" not found", details: ["name": .string(name), "group": .string(group), "kind": .string(resource)])
    }

    public static func badRequest(_ m: String) -> APIError { APIError(400, "BadRequest", m) }
    public static func methodNotAllowed(_ m: String) -> APIError { APIError(405, "MethodNotAllowed", m) }

    public var status: JSON {
        var s: JSON = ["kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure", "message": .string(message),
                       "reason": .string(reason), "code": .int(Int64(code))]
        if let details { s["details"] = details }
        return s
    }
}

public struct WatchPlan: Sendable {
    public var filter: ObjectFilter
    public var from: Int64?
    public var table: Bool
    public var includeObject: String
    public var bookmarks: Bool
    public var timeoutSeconds: Int
}

public struct LogPlan: Sendable {
    public var path: String
    public var follow: Bool
    public var tailLines: Int?
    public var limitBytes: Int?
    /// Follow ends when the container's current run ends: asked through this.
    public var namespace: String
    public var pod: String
    public var container: String
    /// Whether the run the file belongs to has ended (a follow then ends).
    public var finished: (@Sendable () -> Bool)?

    public init(path: String, namespace: String, pod: String, container: String, finished: (@Sendable () -> Bool)? = nil) {
        self.path = path
        self.follow = false
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.finished = finished
    }
}

public enum APIResponse: Sendable {
    case json(Int, JSON, contentType: String = "application/json", warnings: [String] = [])
    case watch(WatchPlan)
    case logs(LogPlan)
}

/// What only the running cluster can do: the handler's way to change it.
public protocol APIBackend: AnyObject, Sendable {
    /// Brings the store up to date with the runtime now (after a change).
    func refresh()
    /// The same, for what a change of `resource` affects only (the answer to a write
    /// waits for this; the rest follows within milliseconds).
    func refresh(after resource: String)
    /// The log file of a container's current (or previous) run.
    func logFile(namespace: String, pod: String, container: String?, previous: Bool) throws(APIError) -> LogPlan
    /// Deletes an object (and what it owns). A pod is deleted gracefully: this returns
    /// once it is Terminating, and it is gone after its grace period at the latest
    /// (gracePeriodSeconds: the client's, else the pod's terminationGracePeriodSeconds).
    /// `orphan`: propagationPolicy Orphan (kubectl delete --cascade=orphan): a
    /// Deployment's pods stay, without their owner.
    func delete(_ key: ObjectKey, gracePeriodSeconds: Int?, orphan: Bool) throws(APIError)
    /// Sets a Deployment's replicas.
    func scale(namespace: String, name: String, replicas: Int) throws(APIError)
    /// Checks that an exec, attach or portforward request can be served now (the pod and
    /// its container run); a transport upgrades the connection only after this.
    func checkStream(_ r: StreamRequest) throws(APIError)
    /// Starts an exec's command in its container.
    func exec(_ r: StreamRequest) throws(APIError) -> ContainerExec
    /// Attaches to a running container.
    func attach(_ r: StreamRequest) throws(APIError) -> AttachTarget
    /// A pod's spec.ephemeralContainers as the client wants them (the subresource
    /// pods/ephemeralcontainers): new ones are added and started; existing ones may not
    /// change nor go.
    func setEphemeralContainers(namespace: String, pod: String, _ containers: JSON) throws(APIError)
    /// A TCP connection from inside the pod's network namespace to 127.0.0.1:port, as
    /// kubelet makes for port-forward (a non-blocking fd the caller owns).
    func connect(namespace: String, pod: String, port: Int) throws(APIError) -> Int32
    /// Creates or replaces an object (a Pod, Deployment, Service or Namespace); the object
    /// is as the client sent it, validated by the runtime's spec rules.
    /// Returns warnings for the client (fields minik accepts but ignores).
    func write(_ object: JSON, resource: APIResource, create: Bool, strict: Bool) throws(APIError) -> [String]
}

extension APIBackend {
    public func refresh(after resource: String) { refresh() }
    public func checkStream(_ r: StreamRequest) throws(APIError) { throw .methodNotAllowed("streams need the running cluster") }
    public func exec(_ r: StreamRequest) throws(APIError) -> ContainerExec { throw .methodNotAllowed("exec needs the running cluster") }
    public func attach(_ r: StreamRequest) throws(APIError) -> AttachTarget { throw .methodNotAllowed("attach needs the running cluster") }
    public func setEphemeralContainers(namespace: String, pod: String, _ containers: JSON) throws(APIError) {
        throw .methodNotAllowed("ephemeral containers need the running cluster")
    }
    public func connect(namespace: String, pod: String, port: Int) throws(APIError) -> Int32 {
        throw .methodNotAllowed("port-forward needs the running cluster")
    }
}

public final class APIHandler: Sendable {
    public let store: ObjectStore
    public let backend: APIBackend?
    public let serverAddress: String

    public init(store: ObjectStore, backend: APIBackend?, serverAddress: String) {
        self.store = store
        self.backend = backend
        self.serverAddress = serverAddress
    }

    public func handle(_ req: APIRequest) -> APIResponse {
        do { return try route(req) } catch {
            return .json(error.code, error.status)
        }
    }

    struct Target {
        var resource: APIResource
        var namespace: String?
        var name: String?
        var sub: String?
    }

    func route(_ req: APIRequest) throws(APIError) -> APIResponse {
        let segs = req.path.split(separator: "/").map(String.init)
        let aggregated = req.accept.contains("as=APIGroupDiscoveryList")
        switch segs {
        case ["version"]:
            return .json(200, ["major": .string(APIVersionInfo.major), "minor": .string(APIVersionInfo.minor),
                               "gitVersion": .string(APIVersionInfo.gitVersion), "gitCommit": "", "gitTreeState": "clean",
                               "buildDate": "2026-01-01T00:00:00Z", "goVersion": "minik", "compiler": "swift", "platform": "linux/amd64"])
        case ["healthz"], ["livez"], ["readyz"]:
            return .json(200, .string("ok"), contentType: "text/plain")
        case ["api"]:
            return aggregated ? .json(200, Discovery.aggregated(core: true), contentType: Discovery.aggregatedContentType)
                : .json(200, Discovery.coreVersions(serverAddress: serverAddress))
        case ["apis"]:
            return aggregated ? .json(200, Discovery.aggregated(core: false), contentType: Discovery.aggregatedContentType)
                : .json(200, Discovery.groupList())
        case ["openapi", "v3"]:
            return .json(200, Discovery.openAPIIndex())
        default: break
        }
        if segs.count >= 3, segs[0] == "openapi", segs[1] == "v3" {
            guard let doc = Discovery.openAPIDocument(segs[2...].joined(separator: "/")) else { throw APIError(404, "NotFound", "the server could not find the requested resource") }
            return .json(200, doc)
        }
        if segs.count == 2, segs[0] == "apis", Discovery.groups.contains(segs[1]) {
            return .json(200, Discovery.group(segs[1]))
        }
        let group: String, version: String, rest: ArraySlice<String>
        if segs.first == "api", segs.count >= 2 {
            (group, version, rest) = ("", segs[1], segs[2...])
        } else if segs.first == "apis", segs.count >= 3 {
            (group, version, rest) = (segs[1], segs[2], segs[3...])
        } else {
            throw APIError(404, "NotFound", "the server could not find the requested resource")
        }
        if rest.isEmpty {
            guard let list = Discovery.resourceList(group: group, version: version) else {
                throw APIError(404, "NotFound", "the server could not find the requested resource")
            }
            return .json(200, list)
        }
        let t = try target(group: group, version: version, Array(rest))
        return try dispatch(req, t)
    }

    func target(group: String, version: String, _ rest: [String]) throws(APIError) -> Target {
        func resource(_ name: String) throws(APIError) -> APIResource {
            guard let r = Discovery.find(group: group, version: version, resource: name) else {
                throw APIError(404, "NotFound", "the server could not find the requested resource")
            }
            return r
        }
        if rest.count >= 3, rest[0] == "namespaces" {
            let r = try resource(rest[2])
            guard r.namespaced, rest.count <= 5 else { throw APIError(404, "NotFound", "the server could not find the requested resource") }
            return Target(resource: r, namespace: rest[1], name: rest.count > 3 ? rest[3] : nil, sub: rest.count > 4 ? rest[4] : nil)
        }
        let r = try resource(rest[0])
        guard rest.count <= 3 else { throw APIError(404, "NotFound", "the server could not find the requested resource") }
        return Target(resource: r, namespace: nil, name: rest.count > 1 ? rest[1] : nil, sub: rest.count > 2 ? rest[2] : nil)
    }

    func key(_ t: Target) -> ObjectKey { ObjectKey(t.resource.resource, t.resource.namespaced ? (t.namespace ?? "") : "", t.name ?? "") }

    /// A namespaced request in a namespace that does not exist answers as the apiserver.
    func requireNamespace(_ ns: String?) throws(APIError) {
        guard let ns else { return }
        if store.get(ObjectKey("namespaces", "", ns)) == nil { throw APIError.notFound("namespaces", ns) }
    }

    func dispatch(_ req: APIRequest, _ t: Target) throws(APIError) -> APIResponse {
        let r = t.resource
        if let sub = t.sub {
            guard r.subresources.contains(where: { $0.name == sub }) else { throw APIError(404, "NotFound", "the server could not find the requested resource") }
            if r.resource == "pods", ["exec", "attach", "portforward"].contains(sub) { return try unupgradedStream(req) }
        }
        switch req.method {
        case "GET":
            guard r.verbs.contains("get") || r.verbs.contains("list") else { throw .methodNotAllowed("the server does not allow this method on the requested resource") }
            if let name = t.name {
                if t.sub == "log" { return try logs(req, t, name) }
                guard let o = store.get(key(t)) else { throw APIError.notFound(r.resource, name, group: r.group) }
                if t.sub == "scale" { return .json(200, scale(o)) }
                if req.accept.contains("as=Table") {
                    return .json(200, Printers.table(r.resource, objects: [o], revision: nil, now: Date(), includeObject: req.query["includeObject"] ?? "Metadata"))
                }
                return .json(200, o)
            }
            return try list(req, t)
        case "DELETE":
            guard r.verbs.contains("delete"), let backend else { throw .methodNotAllowed("the server does not allow this method on the requested resource") }
            guard let name = t.name else { return try deleteCollection(req, t) }
            guard let o = store.get(key(t)) else { throw APIError.notFound(r.resource, name, group: r.group) }
            let options = (try? JSON.parse(req.body)) ?? [:]
            if let uid = options["preconditions"]?["uid"]?.string, uid != o["metadata"]?["uid"]?.string {
                throw APIError(409, "Conflict", "Precondition failed: UID in precondition: \(uid), UID in object meta: \(o["metadata"]?["uid"]?.string ?? "")")
            }
            var grace = options["gracePeriodSeconds"]?.int.map(Int.init)
            if let q = req.query["gracePeriodSeconds"] { grace = Int(q) }
            if let g = grace, g < 0 { throw APIError(422, "Invalid", "gracePeriodSeconds: Invalid value: \(g): must be greater than or equal to 0") }
            let policy = options["propagationPolicy"]?.string ?? req.query["propagationPolicy"]
            if let policy, !["Orphan", "Background", "Foreground"].contains(policy) {
                throw APIError(422, "Invalid", "propagationPolicy: Unsupported value: \"\(policy)\": supported values: \"Foreground\", \"Background\", \"Orphan\"")
            }
            let orphan = policy == "Orphan" || options["orphanDependents"]?.bool == true || req.query["orphanDependents"] == "true"
            try backend.delete(key(t), gracePeriodSeconds: grace, orphan: orphan)
            backend.refresh(after: r.resource)
            // A pod still terminating is answered as it is now; anything else is gone.
            if let now = store.get(key(t)), now["metadata"]?["deletionTimestamp"] != nil { return .json(200, now) }
            var gone = o
            gone["metadata"]?["deletionTimestamp"] = .string(rfc3339(Date()))
            return .json(200, gone)
        case "POST", "PUT", "PATCH":
            guard let backend else { throw .methodNotAllowed("the server does not allow this method on the requested resource") }
            return try write(req, t, backend)
        default:
            throw .methodNotAllowed("the server does not allow this method on the requested resource")
        }
    }

    func scale(_ d: JSON) -> JSON {
        let meta = d["metadata"] ?? [:]
        let selector = Printers.labelSelectorText(d["spec"]?["selector"])
        return ["kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": ["name": meta["name"] ?? "", "namespace": meta["namespace"] ?? "", "uid": meta["uid"] ?? "",
                             "resourceVersion": meta["resourceVersion"] ?? "", "creationTimestamp": meta["creationTimestamp"] ?? nil],
                "spec": ["replicas": d["spec"]?["replicas"] ?? 0],
                "status": ["replicas": d["status"]?["replicas"] ?? 0, "selector": .string(selector == "<none>" ? "" : selector)]]
    }

    func filter(_ req: APIRequest, _ t: Target) throws(APIError) -> ObjectFilter {
        var f = ObjectFilter(resource: t.resource.resource, namespace: t.resource.namespaced ? t.namespace : nil)
        do {
            if let l = req.query["labelSelector"], !l.isEmpty { f.labels = try LabelSelector.parse(l) }
            if let s = req.query["fieldSelector"], !s.isEmpty { f.fields = try FieldSelector.parse(s, resource: t.resource.resource) }
        } catch {
            throw APIError.badRequest(error.message)
        }
        return f
    }

    func list(_ req: APIRequest, _ t: Target) throws(APIError) -> APIResponse {
        let f = try filter(req, t)
        let watch = req.query["watch"] == "true" || req.query["watch"] == "1"
        if watch {
            var from: Int64?
            if let rv = req.query["resourceVersion"], !rv.isEmpty {
                guard let v = Int64(rv) else { throw APIError.badRequest("invalid resource version \"\(rv)\"") }
                from = v
            }
            let timeout = Int(req.query["timeoutSeconds"] ?? "") ?? 1800
            return .watch(WatchPlan(filter: f, from: from, table: req.accept.contains("as=Table"), includeObject: req.query["includeObject"] ?? "Metadata",
                                    bookmarks: req.query["allowWatchBookmarks"] == "true", timeoutSeconds: max(1, min(timeout, 3600))))
        }
        var (items, rev) = store.list(f)
        if t.resource.empty { items = [] }
        var token: String?
        var remaining: Int?
        if let c = req.query["continue"], !c.isEmpty {
            guard let data = Data(base64Encoded: c), let j = try? JSON.parse([UInt8](data)), let after = j["start"]?.string else {
                throw APIError(400, "BadRequest", "continue key is not valid: illegal base64 data")
            }
            // The store's order: by namespace, then name.
            let parts = after.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let mark = (parts.first ?? "", parts.count > 1 ? parts[1] : "")
            items = items.filter { o in (o["metadata"]?["namespace"]?.string ?? "", o["metadata"]?["name"]?.string ?? "") > mark }
        }
        if let l = req.query["limit"], let limit = Int(l), limit > 0, items.count > limit {
            remaining = items.count - limit
            items = Array(items.prefix(limit))
            let j: JSON = ["v": "meta.k8s.io/v1", "rv": .int(rev), "start": .string(Self.listKey(items.last!))]
            token = Data(j.serialized()).base64EncodedString()
        }
        if req.accept.contains("as=Table") {
            return .json(200, Printers.table(t.resource.resource, objects: items, revision: rev, now: Date(),
                                             includeObject: req.query["includeObject"] ?? "Metadata", continueToken: token, remaining: remaining))
        }
        var meta: JSON = ["resourceVersion": .string(String(rev))]
        if let token { meta["continue"] = .string(token) }
        if let remaining { meta["remainingItemCount"] = .int(Int64(remaining)) }
        return .json(200, ["kind": .string(t.resource.listKind), "apiVersion": .string(t.resource.groupVersion), "metadata": meta, "items": .array(items)])
    }

    static func listKey(_ o: JSON) -> String {
        "\(o["metadata"]?["namespace"]?.string ?? "")/\(o["metadata"]?["name"]?.string ?? "")"
    }

    /// One event of a watch, as a JSON line (objects as Tables when asked).
    public static func watchLine(_ e: WatchEvent, plan: WatchPlan, first: Bool) -> [UInt8] {
        var object = e.object
        if plan.table && e.type != .bookmark && e.type != .error {
            object = Printers.table(plan.filter.resource, objects: [e.object], revision: nil, now: Date(), includeObject: plan.includeObject, withColumns: first)
        }
        var line = JSON.object(["type": .string(e.type.rawValue), "object": object]).serialized()
        line.append(10)
        return line
    }

    public static func bookmark(_ revision: Int64, plan: WatchPlan) -> WatchEvent {
        let r = Discovery.resources.first { $0.resource == plan.filter.resource }
        return WatchEvent(type: .bookmark, key: ObjectKey("", "", ""),
                          object: ["kind": .string(r?.kind ?? ""), "apiVersion": .string(r?.groupVersion ?? "v1"),
                                   "metadata": ["resourceVersion": .string(String(revision))]], revision: revision)
    }

    func logs(_ req: APIRequest, _ t: Target, _ name: String) throws(APIError) -> APIResponse {
        guard let backend else { throw .methodNotAllowed("logs need the running cluster") }
        guard store.get(key(t)) != nil else { throw APIError.notFound("pods", name) }
        var plan = try backend.logFile(namespace: t.namespace ?? "default", pod: name, container: req.query["container"],
                                       previous: req.query["previous"] == "true")
        plan.follow = req.query["follow"] == "true"
        plan.tailLines = req.query["tailLines"].flatMap { Int($0) }
        plan.limitBytes = req.query["limitBytes"].flatMap { Int($0) }
        return .logs(plan)
    }

    /// An exec, attach or portforward request that did not upgrade the connection: what
    /// is wrong with it, else the apiserver's 400.
    func unupgradedStream(_ req: APIRequest) throws(APIError) -> APIResponse {
        guard req.method == "GET" || req.method == "POST" else {
            throw .methodNotAllowed("the server does not allow this method on the requested resource")
        }
        guard let backend else { throw .methodNotAllowed("streams need the running cluster") }
        guard let r = try StreamRequest.parse(req.uri) else { throw APIError(404, "NotFound", "the server could not find the requested resource") }
        try backend.checkStream(r)
        throw .badRequest("Upgrade request required")
    }

    func deleteCollection(_ req: APIRequest, _ t: Target) throws(APIError) -> APIResponse {
        guard let backend else { throw .methodNotAllowed("the server does not allow this method on the requested resource") }
        let f = try filter(req, t)
        let (items, _) = store.list(f)
        for o in items {
            try backend.delete(ObjectKey(t.resource.resource, o["metadata"]?["namespace"]?.string ?? "", o["metadata"]?["name"]?.string ?? ""),
                               gracePeriodSeconds: nil, orphan: false)
        }
        backend.refresh()
        return .json(200, ["kind": .string(t.resource.listKind), "apiVersion": .string(t.resource.groupVersion),
                           "metadata": ["resourceVersion": .string(String(store.currentRevision))], "items": .array(items)])
    }

    // MARK: writes

    func write(_ req: APIRequest, _ t: Target, _ backend: APIBackend) throws(APIError) -> APIResponse {
        let r = t.resource
        let verb = req.method == "POST" ? "create" : req.method == "PUT" ? "update" : "patch"
        let allowed = t.sub.flatMap { s in r.subresources.first { $0.name == s }?.verbs } ?? r.verbs
        guard allowed.contains(verb) else {
            throw .methodNotAllowed("the server does not allow this method on the requested resource")
        }
        guard req.body.count <= 3 * 1024 * 1024 else { throw APIError(413, "RequestEntityTooLarge", "the request body is larger than 3 MiB") }
        if req.method == "PATCH" {
            let type = req.contentType.split(separator: ";").first.map { String($0).trimmingSpaces } ?? ""
            guard Patch.types.contains(type) else {
                throw APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: \(Patch.types.joined(separator: ", "))")
            }
        }
        let body: JSON
        if ProtoSchema.isProtobuf(req.contentType) {
            body = try ProtoSchema.decode(req.body)
        } else if let json = try? JSON.parse(req.body) {
            body = json
        } else if req.contentType.hasPrefix("application/apply-patch+yaml") || req.contentType.hasPrefix("application/yaml"),
                  let text = String(validating: req.body, as: UTF8.self), let tree = try? Yams.load(yaml: text), let yaml = JSON(any: tree) {
            body = yaml
        } else {
            do { _ = try JSON.parse(req.body) } catch { throw APIError.badRequest("the body of the request was in an unknown format: \(error)") }
            throw APIError.badRequest("the body of the request was in an unknown format")
        }
        try requireNamespace(t.namespace)
        // The apiserver's default without the parameter is Warn (kubectl sends Strict).
        let strict = req.query["fieldValidation"] == "Strict"
        let dryRun = req.query["dryRun"] == "All"
        if req.method == "POST" {
            // A namespaced resource is created in a namespace's path only.
            guard t.name == nil, !r.namespaced || t.namespace != nil else {
                throw .methodNotAllowed("the server does not allow this method on the requested resource")
            }
            var o = body
            try checkKind(o, r)
            if let ns = t.namespace {
                if let given = o["metadata"]?["namespace"]?.string, given != ns {
                    throw APIError.badRequest("the namespace of the provided object does not match the namespace sent on the request")
                }
                o["metadata"]?["namespace"] = .string(ns)
            }
            if o["metadata"]?["name"]?.string?.isEmpty ?? true, let prefix = o["metadata"]?["generateName"]?.string, !prefix.isEmpty {
                // As the apiserver's SimpleNameGenerator: 5 random lowercase alphanumerics.
                let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
                o["metadata"]?["name"] = .string(prefix + String((0..<5).map { _ in alphabet.randomElement()! }))
                o["metadata"]?["generateName"] = nil
            }
            guard let name = o["metadata"]?["name"]?.string, !name.isEmpty else {
                throw invalid(r, "", [("metadata.name", "Required value: name or generateName is required")])
            }
            let k = ObjectKey(r.resource, t.namespace ?? "", name)
            if store.get(k) != nil {
                throw APIError(409, "AlreadyExists", "\(r.group.isEmpty ? r.resource : "\(r.resource).\(r.group)") \"\(name)\" already exists",
                               details: ["name": .string(name), "group": .string(r.group), "kind": .string(r.resource)])
            }
            if dryRun { return .json(201, o) }
            let warnings = try backend.write(o, resource: r, create: true, strict: strict)
            backend.refresh(after: r.resource)
            return .json(201, store.get(k) ?? o, warnings: warnings)
        }
        guard let name = t.name else { throw .methodNotAllowed("the server does not allow this method on the requested resource") }
        let k = key(t)
        let current = store.get(k)
        if t.sub == "scale" {
            guard let current else { throw APIError.notFound(r.resource, name, group: r.group) }
            var s = scale(current)
            s = req.method == "PUT" ? body : try Patch.apply(contentType: req.contentType, patch: body, to: s)
            guard let n = s["spec"]?["replicas"]?.int, n >= 0, n <= 10_000 else {
                throw invalid(r, name, [("spec.replicas", "Invalid value: must be a number from 0 to 10000")])
            }
            if !dryRun {
                try backend.scale(namespace: t.namespace ?? "", name: name, replicas: Int(n))
                backend.refresh(after: "deployments")
            }
            return .json(200, store.get(k).map(scale) ?? s)
        }
        if t.sub == "status" { throw .methodNotAllowed("status is written by minik's own controllers") }
        if t.sub == "ephemeralcontainers" {
            guard let current else { throw APIError.notFound(r.resource, name, group: r.group) }
            let next: JSON
            if req.method == "PUT" {
                try checkKind(body, r)
                if let rv = body["metadata"]?["resourceVersion"]?.string, !rv.isEmpty, rv != current["metadata"]?["resourceVersion"]?.string {
                    throw conflict(r, name)
                }
                next = body
            } else {
                next = try Patch.apply(contentType: req.contentType, patch: body, to: current)
            }
            if !dryRun {
                try backend.setEphemeralContainers(namespace: t.namespace ?? "default", pod: name, next["spec"]?["ephemeralContainers"] ?? .array([]))
                backend.refresh(after: r.resource)
            }
            return .json(200, store.get(k) ?? next)
        }
        var next: JSON
        if req.method == "PUT" {
            guard let current else { throw APIError.notFound(r.resource, name, group: r.group) }
            try checkKind(body, r)
            if let rv = body["metadata"]?["resourceVersion"]?.string, !rv.isEmpty, rv != current["metadata"]?["resourceVersion"]?.string {
                throw conflict(r, name)
            }
            next = body
        } else {
            let apply = req.contentType.hasPrefix("application/apply-patch")
            if current == nil && !apply { throw APIError.notFound(r.resource, name, group: r.group) }
            if apply {
                try checkKind(body, r)
                next = body
                if let m = req.query["fieldManager"] { next["metadata"]?["annotations"]?["minik.dev/field-manager"] = .string(m) }
            } else {
                if let rv = body["metadata"]?["resourceVersion"]?.string, rv != current?["metadata"]?["resourceVersion"]?.string { throw conflict(r, name) }
                next = try Patch.apply(contentType: req.contentType, patch: body, to: current!)
            }
        }
        next["metadata"]?["name"] = .string(name)
        if let ns = t.namespace { next["metadata"]?["namespace"] = .string(ns) }
        if let current, Self.spec(of: current) == Self.spec(of: next) {
            // Nothing the runtime acts on changed: the object stays as it is.
            return .json(200, current)
        }
        if dryRun { return .json(200, next) }
        let warnings = try backend.write(next, resource: r, create: current == nil, strict: strict)
        backend.refresh(after: r.resource)
        return .json(current == nil ? 201 : 200, store.get(k) ?? next, warnings: warnings)
    }

    /// What a write may change: everything but status and the server's metadata.
    static func spec(of o: JSON) -> JSON {
        var x = o
        x["status"] = nil
        for k in ["resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink", "deletionTimestamp"] {
            x["metadata"]?[k] = nil
        }
        return x
    }

    func checkKind(_ o: JSON, _ r: APIResource) throws(APIError) {
        if let k = o["kind"]?.string, k != r.kind {
            throw APIError.badRequest("the object provided is unrecognized (must be of type \(r.kind)): kind \"\(k)\"")
        }
        if let v = o["apiVersion"]?.string, v != r.groupVersion {
            throw APIError.badRequest("the API version in the data (\(v)) does not match the expected API version (\(r.groupVersion))")
        }
    }

    func conflict(_ r: APIResource, _ name: String) -> APIError {
        APIError(409, "Conflict", "Operation cannot be fulfilled on \(r.group.isEmpty ? r.resource : "\(r.resource).\(r.group)") \"\(name)\": the object has been modified; please apply your changes to the latest version and try again",
                 details: ["name": .string(name), "group": .string(r.group), "kind": .string(r.resource)])
    }

    /// A 422 Invalid with one cause per field, as the apiserver words it.
    public func invalid(_ r: APIResource, _ name: String, _ causes: [(field: String, message: String)]) -> APIError {
        APIError(422, "Invalid", "\(r.kind) \"\(name)\" is invalid: " + causes.map { "\($0.field): \($0.message)" }.joined(separator: ", "),
                 details: ["name": .string(name), "group": .string(r.group), "kind": .string(r.kind),
                           "causes": .array(causes.map { ["reason": "FieldValueInvalid", "message": .string($0.message), "field": .string($0.field)] })])
    }
}
