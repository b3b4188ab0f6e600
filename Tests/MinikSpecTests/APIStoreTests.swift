// The object store as a watch client (kubectl get -w, an informer) relies on it: one
// resourceVersion counter across every resource (etcd's revision), a change recorded
// only when an object's content changed, a re-created object seen as DELETED then ADDED,
// metadata.generation counting spec changes only, and a watch that resumes exactly
// after the resourceVersion it names, or is told 410 Gone when that is older than the
// window it keeps.
import Foundation
import MinikAPI
import Testing

/// A minimal object of `kind` with a creation time, labels and a spec.
func apiObject(_ kind: String, _ name: String, ns: String = "default", labels: [String: String] = [:],
               created: String = "2026-01-01T00:00:00Z", spec: JSON? = nil, status: JSON? = nil) -> JSON {
    var meta: JSON = ["name": .string(name), "creationTimestamp": .string(created)]
    if !ns.isEmpty { meta["namespace"] = .string(ns) }
    if !labels.isEmpty { meta["labels"] = .strings(labels) }
    var o: JSON = ["kind": .string(kind), "apiVersion": kind == "Deployment" ? "apps/v1" : "v1", "metadata": meta]
    if let spec { o["spec"] = spec }
    if let status { o["status"] = status }
    return o
}

/// The objects keyed as ObjectsView keys them.
func apiKeyed(_ resource: String, _ objects: [JSON]) -> [ObjectKey: JSON] {
    var out: [ObjectKey: JSON] = [:]
    for o in objects {
        out[ObjectKey(resource, o["metadata"]?["namespace"]?.string ?? "", o["metadata"]?["name"]?.string ?? "")] = o
    }
    return out
}

/// What a watch sink received, in order.
final class APIEventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var batches: [[WatchEvent]] = []

    func append(_ b: [WatchEvent]) {
        lock.lock()
        batches.append(b)
        lock.unlock()
    }

    var all: [[WatchEvent]] {
        lock.lock(); defer { lock.unlock() }
        return batches
    }

    /// "TYPE name@rv" per event.
    var lines: [String] { all.flatMap { $0.map(describe) } }
}

func describe(_ e: WatchEvent) -> String { "\(e.type.rawValue) \(e.key.name)@\(e.revision)" }

@Suite("API store: resourceVersions, changes and watches")
struct APIStoreTests {
    @Test func resourceVersionCountsEveryChangeAcrossResources() {
        let store = ObjectStore()
        #expect(store.currentRevision == 1)
        let e1 = store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a"), apiObject("Pod", "b")]))
        #expect(e1.map(describe) == ["ADDED a@2", "ADDED b@3"])
        let e2 = store.sync(resource: "services", apiKeyed("services", [apiObject("Service", "a")]))
        #expect(e2.map(describe) == ["ADDED a@4"])
        #expect(store.currentRevision == 4)
        #expect(store.get(ObjectKey("pods", "default", "b"))?[path: "metadata", "resourceVersion"] == "3")
        #expect(store.get(ObjectKey("services", "default", "a"))?[path: "metadata", "resourceVersion"] == "4")
        // A list reports the store's revision, not its newest item's.
        let (items, rev) = store.list(ObjectFilter(resource: "pods"))
        #expect(items.compactMap { $0[path: "metadata", "name"]?.string } == ["a", "b"])
        #expect(rev == 4)
    }

    @Test func anUnchangedSyncRecordsNothing() {
        let store = ObjectStore()
        let pods = apiKeyed("pods", [apiObject("Pod", "a"), apiObject("Pod", "b")])
        store.sync(resource: "pods", pods)
        #expect(store.sync(resource: "pods", pods).isEmpty)
        #expect(store.currentRevision == 3)
        #expect(store.get(ObjectKey("pods", "default", "a"))?[path: "metadata", "resourceVersion"] == "2")
    }

    @Test func aContentChangeIsOneModified() {
        let store = ObjectStore()
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", status: ["phase": "Pending"]), apiObject("Pod", "b")]))
        let e = store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", status: ["phase": "Running"]), apiObject("Pod", "b")]))
        #expect(e.map(describe) == ["MODIFIED a@4"])
        #expect(e.first?.object[path: "status", "phase"] == "Running")
        #expect(e.first?.object[path: "metadata", "resourceVersion"] == "4")
    }

    @Test func aRemovedObjectIsDeletedWithTheLastContent() {
        let store = ObjectStore()
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", labels: ["app": "x"]), apiObject("Pod", "b")]))
        let e = store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "b")]))
        #expect(e.map(describe) == ["DELETED a@4"])
        #expect(e.first?.object[path: "metadata", "labels", "app"] == "x")
        #expect(store.get(ObjectKey("pods", "default", "a")) == nil)
    }

    @Test func aReCreatedObjectIsDeletedThenAdded() {
        let store = ObjectStore()
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", created: "2026-01-01T00:00:00Z")]))
        let e = store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", created: "2026-01-01T00:05:00Z")]))
        #expect(e.map(describe) == ["DELETED a@3", "ADDED a@4"])
        #expect(e[0].object[path: "metadata", "creationTimestamp"] == "2026-01-01T00:00:00Z")
        #expect(e[1].object[path: "metadata", "creationTimestamp"] == "2026-01-01T00:05:00Z")
    }

    @Test func generationCountsSpecChangesOnlyAndObservedGenerationFollows() {
        let store = ObjectStore()
        let key = ObjectKey("deployments", "default", "web")
        func deploy(_ replicas: Int, ready: Int) -> [ObjectKey: JSON] {
            apiKeyed("deployments", [apiObject("Deployment", "web", spec: ["replicas": .int(Int64(replicas))],
                                               status: ["observedGeneration": 1, "readyReplicas": .int(Int64(ready))])])
        }
        store.sync(resource: "deployments", deploy(2, ready: 0))
        #expect(store.get(key)?[path: "metadata", "generation"] == 1)
        #expect(store.get(key)?[path: "status", "observedGeneration"] == 1)
        // Status alone: a new resourceVersion, the same generation.
        let e = store.sync(resource: "deployments", deploy(2, ready: 2))
        #expect(e.map(describe) == ["MODIFIED web@3"])
        #expect(store.get(key)?[path: "metadata", "generation"] == 1)
        // The spec: generation 2, and the status says it has seen it.
        store.sync(resource: "deployments", deploy(3, ready: 2))
        #expect(store.get(key)?[path: "metadata", "generation"] == 2)
        #expect(store.get(key)?[path: "status", "observedGeneration"] == 2)
        #expect(store.get(key)?[path: "metadata", "resourceVersion"] == "4")
        store.sync(resource: "deployments", deploy(1, ready: 1))
        #expect(store.get(key)?[path: "metadata", "generation"] == 3)
    }

    @Test func podsServicesAndNodesHaveNoGeneration() {
        let store = ObjectStore()
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", spec: ["nodeName": "n1"])]))
        store.sync(resource: "services", apiKeyed("services", [apiObject("Service", "s", spec: ["type": "ClusterIP"])]))
        #expect(store.get(ObjectKey("pods", "default", "a"))?[path: "metadata", "generation"] == nil)
        #expect(store.get(ObjectKey("services", "default", "s"))?[path: "metadata", "generation"] == nil)
    }

    @Test func aWatchFromAResourceVersionReplaysOnlyLaterMatchingEvents() throws {
        let store = ObjectStore()
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", labels: ["app": "web"]), apiObject("Pod", "b", labels: ["app": "db"])]))
        store.sync(resource: "services", apiKeyed("services", [apiObject("Service", "a")]))
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", labels: ["app": "web"], status: ["phase": "Running"]),
                                                       apiObject("Pod", "b", labels: ["app": "db"], status: ["phase": "Running"]),
                                                       apiObject("Pod", "c", labels: ["app": "web"])]))
        // Revisions: a@2 b@3 svc@4 a@5 b@6 c@7.
        let all = try store.watch(ObjectFilter(resource: "pods"), from: 3) { _ in }
        #expect(all.replay.map(describe) == ["MODIFIED a@5", "MODIFIED b@6", "ADDED c@7"])
        let web = try store.watch(ObjectFilter(resource: "pods", labels: try LabelSelector.parse("app=web")), from: 2) { _ in }
        #expect(web.replay.map(describe) == ["MODIFIED a@5", "ADDED c@7"])
        let none = try store.watch(ObjectFilter(resource: "pods"), from: 7) { _ in }
        #expect(none.replay.isEmpty)
        #expect(store.watcherCount == 3)
    }

    @Test func aWatchWithoutAResourceVersionStartsWithTheCurrentObjectsAsAdded() throws {
        let store = ObjectStore()
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "b"), apiObject("Pod", "a"), apiObject("Pod", "z", ns: "other")]))
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "b", status: ["phase": "Running"]), apiObject("Pod", "a"),
                                                       apiObject("Pod", "z", ns: "other")]))
        for from: Int64? in [nil, 0] {
            let w = try store.watch(ObjectFilter(resource: "pods", namespace: "default"), from: from) { _ in }
            #expect(w.replay.map(describe) == ["ADDED a@2", "ADDED b@5"])
            #expect(w.replay.allSatisfy { $0.type == .added })
        }
    }

    @Test func aResourceVersionOlderThanTheWindowIsGone() throws {
        let store = ObjectStore(window: 3)
        for i in 0..<5 {
            store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", status: ["n": .int(Int64(i))])]))
        }
        // Revisions 2...6; the window keeps 4, 5, 6: resuming from 3 misses nothing.
        #expect(store.currentRevision == 6)
        let ok = try store.watch(ObjectFilter(resource: "pods"), from: 3) { _ in }
        #expect(ok.replay.map(describe) == ["MODIFIED a@4", "MODIFIED a@5", "MODIFIED a@6"])
        for old: Int64 in [1, 2] {
            do {
                _ = try store.watch(ObjectFilter(resource: "pods"), from: old) { _ in }
                Issue.record("a watch from \(old) was accepted")
            } catch {
                #expect(error.gone)
                #expect(error.message == "too old resource version: \(old) (3)")
            }
        }
        // Newer than the store: an error, but not Gone.
        do {
            _ = try store.watch(ObjectFilter(resource: "pods"), from: 99) { _ in }
            Issue.record("a watch from the future was accepted")
        } catch {
            #expect(!error.gone)
        }
    }

    @Test func theWindowStaysBoundedOverManyChanges() throws {
        let store = ObjectStore(window: 4)
        for i in 0..<50 {
            store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", status: ["n": .int(Int64(i))])]))
        }
        #expect(store.currentRevision == 51)
        let w = try store.watch(ObjectFilter(resource: "pods"), from: 47) { _ in }
        #expect(w.replay.map(\.revision) == [48, 49, 50, 51])
        #expect(throws: StoreError.self) { try store.watch(ObjectFilter(resource: "pods"), from: 46) { _ in } }
    }

    @Test func aSinkReceivesLaterBatchesFilteredAndCancelStopsThem() throws {
        let store = ObjectStore()
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", labels: ["app": "web"])]))
        let log = APIEventLog()
        let filter = ObjectFilter(resource: "pods", namespace: "default", labels: try LabelSelector.parse("app=web"))
        let w = try store.watch(filter, from: nil) { log.append($0) }
        #expect(w.replay.map(describe) == ["ADDED a@2"])
        // Another namespace, another label, another resource: nothing delivered.
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", labels: ["app": "web"]), apiObject("Pod", "x", ns: "other", labels: ["app": "web"]),
                                                       apiObject("Pod", "d", labels: ["app": "db"])]))
        store.sync(resource: "services", apiKeyed("services", [apiObject("Service", "a", labels: ["app": "web"])]))
        #expect(log.lines.isEmpty)
        // One batch per sync, with only the matching events.
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", labels: ["app": "web"], status: ["phase": "Running"]),
                                                       apiObject("Pod", "b", labels: ["app": "web"]), apiObject("Pod", "x", ns: "other", labels: ["app": "web"]),
                                                       apiObject("Pod", "d", labels: ["app": "db"], status: ["phase": "Running"])]))
        #expect(log.all.count == 1)
        #expect(log.lines == ["MODIFIED a@6", "ADDED b@7"])
        store.cancel(watch: w.id)
        #expect(store.watcherCount == 0)
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "b", labels: ["app": "web"])]))
        #expect(log.lines == ["MODIFIED a@6", "ADDED b@7"])
    }

    @Test func aDeletedObjectReachesAWatchThatMatchedIt() throws {
        let store = ObjectStore()
        store.sync(resource: "pods", apiKeyed("pods", [apiObject("Pod", "a", labels: ["app": "web"])]))
        let log = APIEventLog()
        let w = try store.watch(ObjectFilter(resource: "pods", labels: try LabelSelector.parse("app=web")), from: 2) { log.append($0) }
        store.sync(resource: "pods", [:])
        #expect(log.lines == ["DELETED a@3"])
        store.cancel(watch: w.id)
    }
}

@Suite("API selectors: labelSelector and fieldSelector as the apiserver parses them")
struct APISelectorTests {
    typealias R = LabelSelector.Requirement

    @Test(arguments: [
        ("a=b", [R.equals("a", "b")]),
        ("a==b", [R.equals("a", "b")]),
        ("a!=b", [R.notEquals("a", "b")]),
        ("a in (x,y)", [R.isIn("a", ["x", "y"])]),
        ("a notin (x)", [R.notIn("a", ["x"])]),
        ("a", [R.exists("a")]),
        ("!a", [R.doesNotExist("a")]),
        ("app.kubernetes.io/name=web", [R.equals("app.kubernetes.io/name", "web")]),
        ("a=", [R.equals("a", "")]),
        ("", []),
        ("a=b,c!=d", [R.equals("a", "b"), R.notEquals("c", "d")]),
        (" a = b , c in ( x , y ) , ! d , e ", [R.equals("a", "b"), R.isIn("c", ["x", "y"]), R.doesNotExist("d"), R.exists("e")]),
        ("env in (prod),tier notin (fe,be),!canary,track", [R.isIn("env", ["prod"]), R.notIn("tier", ["fe", "be"]), R.doesNotExist("canary"), R.exists("track")]),
    ])
    func labelSelectorsParse(_ text: String, _ expected: [R]) throws {
        #expect(try LabelSelector.parse(text).requirements == expected)
    }

    @Test(arguments: ["a in x", "=b", "a in (x", "a!b", "a=b c", "!", "a notin", "a foo (x)", "(a)", "a in (x y)", "!a=b"])
    func garbageIsRejected(_ text: String) {
        #expect(throws: SelectorError.self) { try LabelSelector.parse(text) }
    }

    @Test func errorMessagesNameWhatWasFound() {
        #expect(throws: SelectorError.self) { try LabelSelector.parse("a in x") }
        do { _ = try LabelSelector.parse("=b") } catch { #expect(error.message == "unable to parse requirement: found '=', expected: identifier") }
        do { _ = try LabelSelector.parse("a foo (x)") } catch { #expect(error.message == "unable to parse requirement: found 'foo', expected: in, notin, =, ==, !=") }
    }

    @Test func matchingFollowsKubernetesSemantics() throws {
        let labels = ["app": "web", "tier": "fe"]
        func m(_ s: String, _ l: [String: String] = labels) throws -> Bool { try LabelSelector.parse(s).matches(l) }
        #expect(try m("app=web"))
        #expect(try !m("app=db"))
        #expect(try m("app!=db"))
        // != and notin match objects without the label at all.
        #expect(try m("env!=prod"))
        #expect(try m("env notin (prod)"))
        #expect(try !m("env in (prod)"))
        #expect(try m("tier in (fe,be)"))
        #expect(try !m("tier notin (fe)"))
        #expect(try m("app"))
        #expect(try !m("!app"))
        #expect(try m("!env"))
        #expect(try !m("app=web,tier=be"))
        #expect(try m(""))
        #expect(try m("", [:]))
    }

    @Test func aLabelSelectorObjectWithMatchLabelsAndExpressions() throws {
        let object: JSON = [
            "matchLabels": ["b": "2", "a": "1"],
            "matchExpressions": [["key": "env", "operator": "In", "values": ["prod", "staging"]],
                                 ["key": "tier", "operator": "NotIn", "values": ["db"]],
                                 ["key": "team", "operator": "Exists"],
                                 ["key": "legacy", "operator": "DoesNotExist"]],
        ]
        let s = try LabelSelector(object: object)
        #expect(s.requirements == [.equals("a", "1"), .equals("b", "2"), .isIn("env", ["prod", "staging"]), .notIn("tier", ["db"]),
                                   .exists("team"), .doesNotExist("legacy")])
        #expect(s.matches(["a": "1", "b": "2", "env": "prod", "team": "x"]))
        #expect(!s.matches(["a": "1", "b": "2", "env": "prod", "team": "x", "legacy": "y"]))
        #expect(try LabelSelector(object: nil).requirements.isEmpty)
        #expect(throws: SelectorError.self) { try LabelSelector(object: ["matchExpressions": [["key": "a", "operator": "Equals"]]]) }
        do { _ = try LabelSelector(object: ["matchExpressions": [["key": "a", "operator": "Equals"]]]) } catch {
            #expect(error.message == "\"Equals\" is not a valid label selector operator")
        }
    }

    let pod: JSON = ["kind": "Pod", "metadata": ["name": "web-1", "namespace": "default"],
                     "spec": ["nodeName": "lab-worker", "restartPolicy": "Always"], "status": ["phase": "Running", "podIP": "10.244.1.2"]]

    @Test func podFieldSelectors() throws {
        func m(_ s: String) throws -> Bool { try FieldSelector.parse(s, resource: "pods").matches(pod) }
        #expect(try m("metadata.name=web-1"))
        #expect(try m("metadata.namespace==default"))
        #expect(try m("spec.nodeName=lab-worker,status.phase=Running"))
        #expect(try !m("spec.nodeName=lab-worker2"))
        #expect(try m("status.phase!=Pending"))
        #expect(try !m("status.phase!=Running"))
        #expect(try m("status.podIP=10.244.1.2"))
        // kubectl's "pods not scheduled yet": an absent field is the empty string.
        #expect(try FieldSelector.parse("spec.nodeName=", resource: "pods").matches(["metadata": ["name": "p"]]))
        let spaced = try FieldSelector.parse(" status.phase != Running ", resource: "pods").terms
        #expect(spaced.map { "\($0.field)|\($0.value)|\($0.negated)" } == ["status.phase|Running|true"])
    }

    @Test func eventFieldSelectors() throws {
        let event: JSON = ["involvedObject": ["kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u-1"],
                           "reason": "BackOff", "type": "Warning", "source": ["component": "kubelet"]]
        func m(_ s: String) throws -> Bool { try FieldSelector.parse(s, resource: "events").matches(event) }
        #expect(try m("involvedObject.kind=Pod,involvedObject.name=web-1"))
        #expect(try m("involvedObject.uid=u-1"))
        #expect(try !m("involvedObject.name=web-2"))
        #expect(try m("type=Warning,reason=BackOff"))
        #expect(try m("source=kubelet"))
        // Not a pod's field.
        #expect(throws: SelectorError.self) { try FieldSelector.parse("involvedObject.name=x", resource: "pods") }
    }

    @Test func unsupportedFieldsAreRefusedWithTheApiserversMessage() {
        do {
            _ = try FieldSelector.parse("spec.containers=x", resource: "pods")
            Issue.record("accepted")
        } catch {
            #expect(error.message == "field label not supported: spec.containers")
        }
        do {
            _ = try FieldSelector.parse("status.phase=Running", resource: "services")
            Issue.record("accepted")
        } catch {
            #expect(error.message == "field label not supported: status.phase")
        }
        #expect(throws: SelectorError.self) { try FieldSelector.parse("metadata.name", resource: "pods") }
        #expect(throws: Never.self) { try FieldSelector.parse("metadata.name=x", resource: "services") }
        #expect(throws: Never.self) { try FieldSelector.parse("spec.unschedulable=true", resource: "nodes") }
    }

    @Test func nodeFieldSelectorOnABool() throws {
        let node: JSON = ["metadata": ["name": "n"], "spec": ["unschedulable": true]]
        #expect(try FieldSelector.parse("spec.unschedulable=true", resource: "nodes").matches(node))
        #expect(try !FieldSelector.parse("spec.unschedulable=false", resource: "nodes").matches(node))
    }
}
