// PATCH bodies as kubectl sends them: `kubectl patch --type merge` (RFC 7386, whose
// appendix A examples are checked one by one), `--type json` (RFC 6902, its section A
// examples and its errors as 422), and the default strategic merge patch of `kubectl
// patch`, `edit`, `apply`, `set image`, `scale`..., whose cases here are modelled on
// k8s.io/apimachinery/pkg/util/strategicpatch's tests: lists with a merge key merge
// element by element, the others are replaced whole, and the $patch, $setElementOrder,
// $deleteFromPrimitiveList and $retainKeys directives do what kubectl means by them.
import Foundation
import MinikAPI
import Testing

private func j(_ text: String) -> JSON {
    do { return try JSON.parse(text) } catch { fatalError("bad JSON in a test: \(text): \(error)") }
}

private let mergeType = "application/merge-patch+json"
private let jsonPatchType = "application/json-patch+json"
private let strategicType = "application/strategic-merge-patch+json"

@Suite("API patch: JSON merge patch (RFC 7386)")
struct APIMergePatchTests {
    @Test(arguments: [
        (#"{"a":"b"}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
        (#"{"a":"b"}"#, #"{"b":"c"}"#, #"{"a":"b","b":"c"}"#),
        (#"{"a":"b"}"#, #"{"a":null}"#, #"{}"#),
        (#"{"a":"b","b":"c"}"#, #"{"a":null}"#, #"{"b":"c"}"#),
        (#"{"a":["b"]}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
        (#"{"a":"c"}"#, #"{"a":["b"]}"#, #"{"a":["b"]}"#),
        (#"{"a":{"b":"c"}}"#, #"{"a":{"b":"d","c":null}}"#, #"{"a":{"b":"d"}}"#),
        (#"{"a":[{"b":"c"}]}"#, #"{"a":[1]}"#, #"{"a":[1]}"#),
        (#"["a","b"]"#, #"["c","d"]"#, #"["c","d"]"#),
        (#"{"a":"b"}"#, #"["c"]"#, #"["c"]"#),
        (#"{"a":"foo"}"#, #"null"#, #"null"#),
        (#"{"a":"foo"}"#, #""bar""#, #""bar""#),
        (#"{"e":null}"#, #"{"a":1}"#, #"{"a":1,"e":null}"#),
        (#"[1,2]"#, #"{"a":"b","c":null}"#, #"{"a":"b"}"#),
        (#"{}"#, #"{"a":{"bb":{"ccc":null}}}"#, #"{"a":{"bb":{}}}"#),
    ])
    func rfc7386AppendixA(_ original: String, _ patch: String, _ result: String) throws {
        #expect(try Patch.apply(contentType: mergeType, patch: j(patch), to: j(original)).text == result)
    }

    @Test func aMergePatchOfADeploymentReplacesItsContainersList() throws {
        let d = j(#"{"spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"a","image":"a:1"},{"name":"b","image":"b:1"}]}}}}"#)
        let p = j(#"{"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"b","image":"b:2"}]}}}}"#)
        let r = try Patch.apply(contentType: "application/merge-patch+json; charset=utf-8", patch: p, to: d)
        #expect(r.text == #"{"spec":{"replicas":3,"template":{"spec":{"containers":[{"image":"b:2","name":"b"}]}}}}"#)
    }

    @Test func anUnknownContentTypeIs415() {
        for type in ["application/json", "text/plain", "", "application/yaml"] {
            do {
                _ = try Patch.apply(contentType: type, patch: ["a": 1], to: [:])
                Issue.record("\(type) accepted")
            } catch {
                #expect(error.code == 415)
                #expect(error.reason == "UnsupportedMediaType")
                #expect(error.message.hasPrefix("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json"))
            }
        }
    }
}

@Suite("API patch: JSON patch (RFC 6902)")
struct APIJSONPatchTests {
    func apply(_ doc: String, _ ops: String) throws(APIError) -> String {
        try Patch.apply(contentType: jsonPatchType, patch: j(ops), to: j(doc)).text
    }

    func code(_ doc: String, _ ops: String) -> Int? {
        do { _ = try apply(doc, ops); return nil } catch { return error.code }
    }

    @Test func rfc6902Examples() throws {
        // A.1 to A.10 and A.16.
        #expect(try apply(#"{"foo":"bar"}"#, #"[{"op":"add","path":"/baz","value":"qux"}]"#) == #"{"baz":"qux","foo":"bar"}"#)
        #expect(try apply(#"{"foo":["bar","baz"]}"#, #"[{"op":"add","path":"/foo/1","value":"qux"}]"#) == #"{"foo":["bar","qux","baz"]}"#)
        #expect(try apply(#"{"baz":"qux","foo":"bar"}"#, #"[{"op":"remove","path":"/baz"}]"#) == #"{"foo":"bar"}"#)
        #expect(try apply(#"{"foo":["bar","qux","baz"]}"#, #"[{"op":"remove","path":"/foo/1"}]"#) == #"{"foo":["bar","baz"]}"#)
        #expect(try apply(#"{"baz":"qux","foo":"bar"}"#, #"[{"op":"replace","path":"/baz","value":"boo"}]"#) == #"{"baz":"boo","foo":"bar"}"#)
        #expect(try apply(#"{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}"#, #"[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]"#)
            == #"{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}"#)
        #expect(try apply(#"{"foo":["all","grass","cows","eat"]}"#, #"[{"op":"move","from":"/foo/1","path":"/foo/3"}]"#)
            == #"{"foo":["all","cows","eat","grass"]}"#)
        #expect(try apply(#"{"baz":"qux","foo":["a",2,"c"]}"#, #"[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]"#)
            == #"{"baz":"qux","foo":["a",2,"c"]}"#)
        #expect(try apply(#"{"foo":"bar"}"#, #"[{"op":"add","path":"/child","value":{"grandchild":{}}}]"#) == #"{"child":{"grandchild":{}},"foo":"bar"}"#)
        #expect(try apply(#"{"foo":["bar"]}"#, #"[{"op":"add","path":"/foo/-","value":["abc","def"]}]"#) == #"{"foo":["bar",["abc","def"]]}"#)
        #expect(try apply(#"{"foo":"bar"}"#, #"[{"op":"copy","from":"/foo","path":"/baz"}]"#) == #"{"baz":"bar","foo":"bar"}"#)
    }

    @Test func escapedPointersAndTheWholeDocument() throws {
        #expect(try apply(#"{"metadata":{"annotations":{}}}"#, #"[{"op":"add","path":"/metadata/annotations/example.com~1a~0b","value":"x"}]"#)
            == #"{"metadata":{"annotations":{"example.com/a~b":"x"}}}"#)
        #expect(try apply(#"{"a":1}"#, #"[{"op":"replace","path":"","value":{"b":2}}]"#) == #"{"b":2}"#)
    }

    @Test func kubectlStyleOperationsOnAPod() throws {
        let pod = #"{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"busybox","args":["sleep","1"]}]}}"#
        #expect(try apply(pod, #"[{"op":"replace","path":"/spec/containers/0/image","value":"nginx"}]"#)
            == #"{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"args":["sleep","1"],"image":"nginx","name":"c"}]}}"#)
        #expect(try apply(pod, #"[{"op":"add","path":"/spec/containers/0/args/-","value":"2"},{"op":"remove","path":"/metadata/labels/app"}]"#)
            == #"{"metadata":{"labels":{}},"spec":{"containers":[{"args":["sleep","1","2"],"image":"busybox","name":"c"}]}}"#)
    }

    @Test func errorsAre422WithTheirCause() {
        // Out of range indexes.
        #expect(code(#"{"a":[1,2]}"#, #"[{"op":"add","path":"/a/3","value":9}]"#) == 422)
        #expect(code(#"{"a":[1,2]}"#, #"[{"op":"add","path":"/a/-1","value":9}]"#) == 422)
        #expect(code(#"{"a":[1,2]}"#, #"[{"op":"remove","path":"/a/2"}]"#) == 422)
        #expect(code(#"{"a":[1,2]}"#, #"[{"op":"replace","path":"/a/5","value":0}]"#) == 422)
        #expect(code(#"{"a":[1,2]}"#, #"[{"op":"remove","path":"/a/-"}]"#) == 422)
        // Missing paths.
        #expect(code(#"{"foo":"bar"}"#, #"[{"op":"add","path":"/baz/bat","value":"qux"}]"#) == 422)
        #expect(code(#"{"foo":"bar"}"#, #"[{"op":"remove","path":"/baz"}]"#) == 422)
        #expect(code(#"{"foo":"bar"}"#, #"[{"op":"replace","path":"/baz","value":1}]"#) == 422)
        #expect(code(#"{"foo":"bar"}"#, #"[{"op":"move","from":"/nope","path":"/x"}]"#) == 422)
        #expect(code(#"{"foo":"bar"}"#, #"[{"op":"add","path":"/foo/x","value":1}]"#) == 422)
        // A failed test stops the whole patch.
        #expect(code(#"{"baz":"qux"}"#, #"[{"op":"test","path":"/baz","value":"bar"}]"#) == 422)
        #expect(code(#"{"baz":"qux"}"#, #"[{"op":"test","path":"/nope","value":"bar"}]"#) == 422)
        do {
            _ = try apply(#"{"baz":"qux"}"#, #"[{"op":"test","path":"/baz","value":"bar"}]"#)
        } catch {
            #expect(error.reason == "Invalid")
            #expect(error.message == "json patch: test failed at /baz")
        }
        do {
            _ = try apply(#"{"a":[1,2]}"#, #"[{"op":"add","path":"/a/3","value":9}]"#)
        } catch {
            #expect(error.message == "json patch: index 3 is out of range")
        }
    }

    @Test func malformedPatchesAre400() {
        #expect(code("{}", #"{"op":"add"}"#) == 400)
        #expect(code("{}", #"[{"op":"add","path":"/a"}]"#) == 400)
        #expect(code("{}", #"[{"path":"/a","value":1}]"#) == 400)
        #expect(code("{}", #"[{"op":"frobnicate","path":"/a"}]"#) == 400)
        #expect(code("{}", #"[{"op":"add","path":"a","value":1}]"#) == 400)
        #expect(code("{}", #"[{"op":"move","path":"/a"}]"#) == 400)
    }

    @Test func aFailingOperationLeavesNothingHalfApplied() throws {
        let original = j(#"{"a":1}"#)
        #expect(throws: APIError.self) {
            try Patch.apply(contentType: jsonPatchType, patch: j(#"[{"op":"add","path":"/b","value":2},{"op":"test","path":"/a","value":5}]"#), to: original)
        }
        #expect(original.text == #"{"a":1}"#)
    }
}

@Suite("API patch: strategic merge patch")
struct APIStrategicPatchTests {
    func sm(_ original: String, _ patch: String) throws(APIError) -> String {
        try Patch.apply(contentType: strategicType, patch: j(patch), to: j(original)).text
    }

    let pod = #"""
    {"metadata":{"name":"web","labels":{"app":"web"},"finalizers":["a","b","c"]},
     "spec":{"containers":[
        {"name":"app","image":"app:1","args":["--port","80"],"command":["/app"],
         "ports":[{"containerPort":80,"name":"http"},{"containerPort":443,"name":"https"}],
         "env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]},
        {"name":"sidecar","image":"side:1"}]}}
    """#

    @Test func containersMergeByName() throws {
        // `kubectl set image pod/web app=app:2`.
        let r = j(try sm(pod, #"{"spec":{"containers":[{"name":"app","image":"app:2"}]}}"#))
        let cs = r[path: "spec", "containers"]?.array ?? []
        #expect(cs.map { $0["name"]?.string ?? "" } == ["app", "sidecar"])
        #expect(cs.map { $0["image"]?.string ?? "" } == ["app:2", "side:1"])
        // The rest of the changed container is kept.
        #expect(cs.first?["args"] == ["--port", "80"])
        #expect(cs.first?["env"]?.array?.count == 2)
        // A new name is appended.
        let added = j(try sm(pod, #"{"spec":{"containers":[{"name":"log","image":"log:1"}]}}"#))
        #expect(added[path: "spec", "containers"]?.array?.compactMap { $0["name"]?.string } == ["app", "sidecar", "log"])
    }

    @Test func containersOfADeploymentTemplateMergeByName() throws {
        let d = #"{"spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"a","image":"a:1"},{"name":"b","image":"b:1"}]}}}}"#
        #expect(try sm(d, #"{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"b:2"}]}}}}"#)
            == #"{"spec":{"replicas":1,"template":{"spec":{"containers":[{"image":"a:1","name":"a"},{"image":"b:2","name":"b"}]}}}}"#)
    }

    @Test func containerPortsMergeByContainerPort() throws {
        let r = j(try sm(pod, #"{"spec":{"containers":[{"name":"app","ports":[{"containerPort":80,"protocol":"TCP"},{"containerPort":8080}]}]}}"#))
        #expect(r[path: "spec", "containers"]?.array?.first?["ports"]?.text
            == #"[{"containerPort":80,"name":"http","protocol":"TCP"},{"containerPort":443,"name":"https"},{"containerPort":8080}]"#)
    }

    @Test func servicePortsMergeByPort() throws {
        let svc = #"{"spec":{"type":"NodePort","ports":[{"name":"http","port":80,"targetPort":8080,"nodePort":30080},{"name":"https","port":443,"targetPort":8443}]}}"#
        #expect(try sm(svc, #"{"spec":{"ports":[{"port":443,"nodePort":30443}]}}"#)
            == #"{"spec":{"ports":[{"name":"http","nodePort":30080,"port":80,"targetPort":8080},{"name":"https","nodePort":30443,"port":443,"targetPort":8443}],"type":"NodePort"}}"#)
    }

    @Test func envMergesByName() throws {
        // `kubectl set env pod/web B=3 C=4`.
        let r = j(try sm(pod, #"{"spec":{"containers":[{"name":"app","env":[{"name":"B","value":"3"},{"name":"C","value":"4"}]}]}}"#))
        #expect(r[path: "spec", "containers"]?.array?.first?["env"]?.text
            == #"[{"name":"A","value":"1"},{"name":"B","value":"3"},{"name":"C","value":"4"}]"#)
    }

    @Test func patchDeleteRemovesOneListElement() throws {
        let r = j(try sm(pod, #"{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}"#))
        #expect(r[path: "spec", "containers"]?.array?.compactMap { $0["name"]?.string } == ["app"])
        // `kubectl set env pod/web A-`.
        let e = j(try sm(pod, #"{"spec":{"containers":[{"name":"app","env":[{"name":"A","$patch":"delete"}]}]}}"#))
        #expect(e[path: "spec", "containers"]?.array?.first?["env"]?.text == #"[{"name":"B","value":"2"}]"#)
        // Deleting what is not there changes nothing.
        let n = j(try sm(pod, #"{"spec":{"containers":[{"name":"nope","$patch":"delete"}]}}"#))
        #expect(n == j(pod))
    }

    @Test func patchReplaceReplacesTheWholeList() throws {
        let r = j(try sm(pod, #"{"spec":{"containers":[{"name":"only","image":"only:1"},{"$patch":"replace"}]}}"#))
        #expect(r[path: "spec", "containers"]?.text == #"[{"image":"only:1","name":"only"}]"#)
    }

    @Test func patchReplaceOnAMapReplacesTheMap() throws {
        let r = j(try sm(pod, #"{"metadata":{"labels":{"tier":"fe","$patch":"replace"}}}"#))
        #expect(r[path: "metadata", "labels"]?.text == #"{"tier":"fe"}"#)
        let d = j(try sm(pod, #"{"metadata":{"labels":{"$patch":"delete"}}}"#))
        #expect(d[path: "metadata", "labels"] == nil)
    }

    @Test func setElementOrderReordersTheList() throws {
        let r = j(try sm(pod, #"{"spec":{"$setElementOrder/containers":[{"name":"sidecar"},{"name":"app"}],"containers":[{"name":"sidecar","image":"side:2"}]}}"#))
        let cs = r[path: "spec", "containers"]?.array ?? []
        #expect(cs.compactMap { $0["name"]?.string } == ["sidecar", "app"])
        #expect(cs.compactMap { $0["image"]?.string } == ["side:2", "app:1"])
        // On a list of scalars (a merged primitive list).
        let f = j(try sm(pod, #"{"metadata":{"$setElementOrder/finalizers":["c","a","b"]}}"#))
        #expect(f[path: "metadata", "finalizers"] == ["c", "a", "b"])
    }

    @Test func finalizersMergeAndDeleteFromPrimitiveList() throws {
        let add = j(try sm(pod, #"{"metadata":{"finalizers":["d","a"]}}"#))
        #expect(add[path: "metadata", "finalizers"] == ["a", "b", "c", "d"])
        let del = j(try sm(pod, #"{"metadata":{"$deleteFromPrimitiveList/finalizers":["b"]}}"#))
        #expect(del[path: "metadata", "finalizers"] == ["a", "c"])
        let both = j(try sm(pod, #"{"metadata":{"$deleteFromPrimitiveList/finalizers":["a","c"],"finalizers":["e"]}}"#))
        #expect(both[path: "metadata", "finalizers"] == ["b", "e"])
    }

    @Test func retainKeysClearsTheOtherFields() throws {
        // kubectl apply changing a Deployment's strategy from RollingUpdate to Recreate.
        let d = #"{"spec":{"replicas":2,"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"}}}}"#
        #expect(try sm(d, #"{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}"#)
            == #"{"spec":{"replicas":2,"strategy":{"type":"Recreate"}}}"#)
        // A volume's source switched from emptyDir to hostPath.
        let v = #"{"spec":{"volumes":[{"name":"data","emptyDir":{}}]}}"#
        #expect(try sm(v, #"{"spec":{"volumes":[{"name":"data","$retainKeys":["hostPath","name"],"hostPath":{"path":"/tmp"}}]}}"#)
            == #"{"spec":{"volumes":[{"hostPath":{"path":"/tmp"},"name":"data"}]}}"#)
    }

    @Test func nullDeletesAField() throws {
        let r = j(try sm(pod, #"{"metadata":{"labels":{"app":null}},"spec":{"containers":[{"name":"app","command":null}]}}"#))
        #expect(r[path: "metadata", "labels"] == [:])
        #expect(r[path: "spec", "containers"]?.array?.first?["command"] == nil)
        #expect(r[path: "spec", "containers"]?.array?.first?["image"] == "app:1")
    }

    @Test func listsWithoutAMergeKeyAreReplacedWhole() throws {
        let r = j(try sm(pod, #"{"spec":{"containers":[{"name":"app","args":["--verbose"],"command":["/bin/app","serve"]}]}}"#))
        let c = r[path: "spec", "containers"]?.array?.first
        #expect(c?["args"] == ["--verbose"])
        #expect(c?["command"] == ["/bin/app", "serve"])
        // Tolerations have no merge key either.
        let t = #"{"spec":{"tolerations":[{"key":"a","operator":"Exists"}]}}"#
        #expect(try sm(t, #"{"spec":{"tolerations":[{"key":"b","operator":"Exists"}]}}"#) == #"{"spec":{"tolerations":[{"key":"b","operator":"Exists"}]}}"#)
    }

    @Test func directivesNeverReachTheResult() throws {
        let r = try sm("{}", #"{"spec":{"containers":[{"name":"a","image":"a:1","env":[{"name":"X","value":"1","$patch":"merge"}]}]}}"#)
        #expect(!r.contains("$patch"))
        let s = try sm("{}", #"{"spec":{"$setElementOrder/containers":[{"name":"a"}],"containers":[{"name":"a","image":"a:1"}]}}"#)
        #expect(s == #"{"spec":{"containers":[{"image":"a:1","name":"a"}]}}"#)
    }

    @Test func aNodesTaintsAreReplacedAsKubernetesDefinesThem() throws {
        // NodeSpec.taints has no patchStrategy in k8s.io/api (it is +listType=atomic), so
        // a strategic patch replaces the list: `kubectl taint node n key-` sends the list
        // without the taint and expects it gone.
        let node = #"{"spec":{"taints":[{"key":"a","effect":"NoSchedule"},{"key":"b","effect":"NoSchedule"}]}}"#
        do {
            let r = try sm(node, #"{"spec":{"taints":[{"key":"b","effect":"NoSchedule"}]}}"#)
            #expect(r == #"{"spec":{"taints":[{"effect":"NoSchedule","key":"b"}]}}"#)
        }
    }

    @Test func aStrategicPatchMustBeAnObject() {
        do {
            _ = try sm("{}", #"[{"op":"add"}]"#)
            Issue.record("accepted")
        } catch {
            #expect(error.code == 400)
            #expect(error.message == "a strategic merge patch must be a JSON object")
        }
    }
}
