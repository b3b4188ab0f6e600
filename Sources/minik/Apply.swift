import ArgumentParser
import Foundation
import MinikRuntime
import MinikSpec
import MinikSupervisor
import MinikAPI
import Yams

/// One request to the cluster's Kubernetes API, through the supervisor's control socket
/// (root only): the same handler, validation and semantics as kubectl gets over HTTPS.
/// `warn`: print the server's warnings (apply has printed them with their places already).
func api(_ cluster: String, _ method: String, _ uri: String, body: JSON? = nil,
         contentType: String = "application/json", warn: Bool = true) throws -> (status: Int, object: JSON) {
    let call = APICall(method: method, uri: uri, contentType: contentType, body: body?.text ?? "")
    guard let r = ControlSocket.call(path: Naming.socketPath(cluster), ControlRequest(op: .api, api: call), timeout: 120), r.ok,
          let status = r.status else {
        throw CLIError("the supervisor of cluster \(cluster) does not answer; nothing can change without it")
    }
    if warn { for w in r.warnings ?? [] { printErr("Warning: \(w)") } }
    let object = (try? JSON.parse(r.body ?? "")) ?? .null
    return (status, object)
}

/// An API error as kubectl prints it: `Error from server (NotFound): ...`.
func serverError(_ o: JSON) -> CLIError {
    CLIError("Error from server (\(o["reason"]?.string ?? "InternalError")): \(o["message"]?.string ?? o.text)")
}

/// The path of a resource (and of one object) in the API.
func resourcePath(_ r: APIResource, namespace: String, name: String? = nil) -> String {
    let base = r.group.isEmpty ? "/api/v1" : "/apis/\(r.group)/\(r.version)"
    let ns = r.namespaced ? "/namespaces/\(namespace)" : ""
    return "\(base)\(ns)/\(r.resource)" + (name.map { "/\($0)" } ?? "")
}

/// "deployment.apps/web", as kubectl names an object in its messages.
func objectName(_ r: APIResource, _ name: String) -> String {
    "\(r.singular)\(r.group.isEmpty ? "" : ".\(r.group)")/\(name)"
}

func resolveResource(_ word: String) throws -> APIResource {
    let w = word.lowercased()
    if let r = Discovery.resources.first(where: { $0.resource == w || $0.singular == w || $0.shortNames.contains(w) || $0.kind.lowercased() == w }) { return r }
    throw CLIError("error: the server doesn't have a resource type \"\(word)\"")
}

/// The supervisor answers (a ping: the state of a big cluster is megabytes), or the
/// error that says how to get one back.
func requireSupervisor(_ cluster: String) throws {
    if let r = ControlSocket.call(path: Naming.socketPath(cluster), ControlRequest(op: .ping), timeout: 10), r.ok { return }
    _ = try runningSpec(cluster)
}

func runningSpec(_ cluster: String) throws -> ClusterSpec {
    let (state, live) = try clusterState(cluster)
    guard live else {
        throw CLIError("the supervisor of cluster \(cluster) is not running; nothing can change without it: `minik up \(state.specFile)` adopts the running cluster")
    }
    return state.spec
}

/// The documents of a file as API objects, in order.
func documents(_ text: String, file: String) throws -> [JSON] {
    var out: [JSON] = []
    do {
        for doc in try Yams.load_all(yaml: text) {
            guard let j = JSON(any: doc) else { continue }
            if j == .null { continue }
            out.append(j)
        }
    } catch {
        throw CLIError("\(file): \(error)")
    }
    return out
}

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or replace pods, deployments, services and namespaces of a running cluster, object by object through its API.")

    @Option(name: .shortAndLong, help: "A file of Pods, Deployments, Services, Namespaces.") var filename: String
    @OptionGroup var cluster: ClusterOption

    func run() throws {
        try requireRoot("minik apply")
        let name = try cluster.resolve()
        try requireSupervisor(name)
        guard let text = try? String(contentsOfFile: filename, encoding: .utf8) else { throw CLIError("\(filename): cannot read the file") }
        // Every problem with its file, line and field, before anything is sent: the
        // supervisor checks the file against the running spec (which it has; fetching it
        // took seconds with thousands of objects), then each object again by the same rules.
        guard let checked = ControlSocket.call(path: Naming.socketPath(name), ControlRequest(op: .check, check: FileCheck(file: filename, text: text)), timeout: 120) else {
            throw CLIError("the supervisor of cluster \(name) does not answer; nothing can change without it")
        }
        guard checked.ok else { throw CLIError(checked.message ?? "\(filename): refused") }
        for w in checked.warnings ?? [] { printErr("warning: \(w)") }
        var failed = false
        let docs = try documents(text, file: filename)
        // minik apply makes the namespaces its objects name (kubectl wants them made first).
        let declared = Set(docs.filter { $0["kind"]?.string == "Namespace" }.compactMap { $0["metadata"]?["name"]?.string })
        var namespaces: [String] = []
        for o in docs where o["kind"]?.string != "Namespace" {
            let ns = o["metadata"]?["namespace"]?.string ?? "default"
            if !declared.contains(ns) && !namespaces.contains(ns) { namespaces.append(ns) }
        }
        for ns in namespaces where try api(name, "GET", "/api/v1/namespaces/\(ns)").status == 404 {
            let (code, o) = try api(name, "POST", "/api/v1/namespaces", body: ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]])
            if code >= 300 { throw serverError(o) }
            print("namespace/\(ns) created")
        }
        for var o in docs {
            guard let kind = o["kind"]?.string, let version = o["apiVersion"]?.string,
                  let r = Discovery.find(kind: kind, apiVersion: version), let objName = o["metadata"]?["name"]?.string else { continue }
            let ns = o["metadata"]?["namespace"]?.string ?? "default"
            let (status, current) = try api(name, "GET", resourcePath(r, namespace: ns, name: objName))
            if status == 404 {
                let (code, created) = try api(name, "POST", resourcePath(r, namespace: ns), body: o, warn: false)
                if code >= 300 { printErr(serverError(created).description); failed = true; continue }
                print("\(objectName(r, objName)) created")
                continue
            }
            let before = current["metadata"]?["resourceVersion"]
            o["metadata"]?["resourceVersion"] = before
            let (code, after) = try api(name, "PUT", resourcePath(r, namespace: ns, name: objName), body: o, warn: false)
            if code >= 300 { printErr(serverError(after).description); failed = true; continue }
            print("\(objectName(r, objName)) \(after["metadata"]?["resourceVersion"] == before ? "unchanged" : "configured")")
        }
        if failed { throw ExitCode.failure }
    }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a pod, a deployment (and its pods), a service or a namespace through the API; IPs go back to the pool.")

    @Argument(help: "pod, deployment, service or namespace") var resource: String?
    @Argument(help: "Its name.") var name: String?
    @Option(name: .shortAndLong, help: "Namespace.") var namespace: String = "default"
    @Option(name: .shortAndLong, help: "Delete what a file describes.") var filename: String?
    @Option(name: .customLong("grace-period"), help: "Seconds between SIGTERM and SIGKILL for a pod (kubectl's default is the pod's terminationGracePeriodSeconds; minik's, 1).")
    var grace: Int = 1
    @OptionGroup var cluster: ClusterOption

    func run() throws {
        try requireRoot("minik delete")
        let c = try cluster.resolve()
        try requireSupervisor(c)
        var targets: [(APIResource, String, String)] = []
        if let filename {
            guard let text = try? String(contentsOfFile: filename, encoding: .utf8) else { throw CLIError("\(filename): cannot read the file") }
            for o in try documents(text, file: filename) {
                guard let kind = o["kind"]?.string, let version = o["apiVersion"]?.string, let r = Discovery.find(kind: kind, apiVersion: version),
                      let n = o["metadata"]?["name"]?.string else { continue }
                targets.append((r, o["metadata"]?["namespace"]?.string ?? "default", n))
            }
        } else {
            guard let resource, let name else { throw CLIError("usage: minik delete pod|deployment|service|namespace NAME, or minik delete -f FILE") }
            targets.append((try resolveResource(resource), namespace, name))
        }
        var failed = false
        for (r, ns, n) in targets {
            let options: JSON = ["kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": .int(Int64(grace))]
            let (status, o) = try api(c, "DELETE", resourcePath(r, namespace: ns, name: n), body: options)
            if status >= 300 { printErr(serverError(o).description); failed = true; continue }
            print("\(r.singular)\(r.group.isEmpty ? "" : ".\(r.group)") \"\(n)\" deleted")
            // As kubectl waits: until the object is gone (a pod: its grace period at most).
            if r.resource == "pods" {
                let uid = o["metadata"]?["uid"]
                let deadline = Date().addingTimeInterval(Double(grace) + 30)
                while Date() < deadline {
                    let (s, now) = try api(c, "GET", resourcePath(r, namespace: ns, name: n))
                    if s == 404 || now["metadata"]?["uid"] != uid { break }
                    usleep(50_000)
                }
            }
        }
        if failed { throw ExitCode.failure }
    }
}

struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Set the number of replicas of a deployment (its scale subresource).")

    @Argument(help: "deployment") var resource: String
    @Argument(help: "Its name.") var name: String
    @Option(help: "The number of pods.") var replicas: Int
    @Option(name: .shortAndLong, help: "Namespace.") var namespace: String = "default"
    @OptionGroup var cluster: ClusterOption

    func run() throws {
        try requireRoot("minik scale")
        guard ["deployment", "deployments", "deploy"].contains(resource) else { throw CLIError("scale supports deployments") }
        let c = try cluster.resolve()
        try requireSupervisor(c)
        let r = try resolveResource("deployments")
        let (status, o) = try api(c, "PATCH", resourcePath(r, namespace: namespace, name: name) + "/scale",
                                  body: ["spec": ["replicas": .int(Int64(replicas))]], contentType: "application/merge-patch+json")
        if status >= 300 { throw serverError(o) }
        print("deployment.apps/\(name) scaled")
    }
}
