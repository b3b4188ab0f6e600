// An object read from the server and written back (`kubectl get -o yaml | kubectl
// replace -f -`, `kubectl edit`, `kubectl apply` of an exported file) must not look
// like a change nor draw warnings about fields the user never wrote: WriteForm.input
// drops the status, the server's metadata and every default ObjectsView fills in, and
// keeps whatever differs from a default. The round trip at the end renders a running
// cluster through ObjectsView, writes each object back through WriteForm and the spec
// loader, and expects the same pods, Deployments and Services, without a warning.
import Foundation
import MinikAPI
import MinikRuntime
import MinikSpec
import Testing

@Suite("API write form: what a client writes back")
struct APIWriteFormTests {
    @Test func aServedPodLosesStatusServerMetadataAndDefaults() {
        var pod = apiServedPod("web-1", labels: ["app": "web"], node: "lab-worker", phase: "Running")
        pod["metadata"]?["resourceVersion"] = "12"
        pod["metadata"]?["generation"] = 1
        pod["metadata"]?["annotations"] = ["minik.dev/netns": "minik-lab-web-1"]
        pod["metadata"]?["ownerReferences"] = [["kind": "ReplicaSet", "name": "web-abc", "uid": "u"]]
        pod["metadata"]?["managedFields"] = []
        pod["status"] = ["phase": "Running", "podIP": "10.244.1.2"]
        #expect(WriteForm.input(pod, resource: "pods").text
            == #"{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"app":"web"},"name":"web-1","namespace":"default"},"spec":{"containers":[{"args":["sleep","3600"],"image":"busybox","name":"c"}],"nodeName":"lab-worker"}}"#)
    }

    @Test func userValuesThatAreNotDefaultsAreKept() {
        var pod = apiServedPod("p", labels: [:], node: nil, phase: "Pending")
        pod["spec"]?["schedulerName"] = "my-scheduler"
        pod["spec"]?["terminationGracePeriodSeconds"] = 5
        pod["spec"]?["restartPolicy"] = "Never"
        pod["spec"]?["dnsPolicy"] = "Default"
        pod["spec"]?["tolerations"] = [
            ["key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"],
            ["key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300],
            ["key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60],
        ]
        pod["spec"]?["containers"] = [[
            "name": "c", "image": "busybox", "imagePullPolicy": "Always", "terminationMessagePath": "/tmp/msg", "terminationMessagePolicy": "FallbackToLogsOnError",
            "resources": ["limits": ["memory": "64Mi"], "requests": ["memory": "32Mi"]],
        ]]
        let spec = WriteForm.input(pod, resource: "pods")["spec"]
        #expect(spec?["schedulerName"] == "my-scheduler")
        #expect(spec?["terminationGracePeriodSeconds"] == 5)
        #expect(spec?["restartPolicy"] == "Never")
        #expect(spec?["dnsPolicy"] == "Default")
        // The default tolerations go; a custom one, and a default one with another time, stay.
        #expect(spec?["tolerations"] == [["key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"],
                                         ["key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60]])
        #expect(spec?["containers"] == [[
            "name": "c", "image": "busybox", "imagePullPolicy": "Always", "terminationMessagePath": "/tmp/msg", "terminationMessagePolicy": "FallbackToLogsOnError",
            "resources": ["limits": ["memory": "64Mi"], "requests": ["memory": "32Mi"]],
        ]])
    }

    @Test func requestsEqualToLimitsAreTheServersCopy() {
        var pod = apiServedPod("p", labels: [:], node: nil, phase: "Pending")
        pod["spec"]?["containers"] = [["name": "c", "image": "busybox", "resources": ["limits": ["memory": "64Mi"], "requests": ["memory": "64Mi"]]]]
        #expect(WriteForm.input(pod, resource: "pods")[path: "spec", "containers"] == [["name": "c", "image": "busybox", "resources": ["limits": ["memory": "64Mi"]]]])
    }

    @Test func probeDefaultsGo() {
        var pod = apiServedPod("p", labels: [:], node: nil, phase: "Pending")
        pod["spec"]?["containers"] = [["name": "c", "image": "busybox",
                                       "readinessProbe": ["httpGet": ["path": "/healthz", "port": 8080, "scheme": "HTTP"], "initialDelaySeconds": 0,
                                                          "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3],
                                       "livenessProbe": ["tcpSocket": ["port": "http"], "initialDelaySeconds": 10, "periodSeconds": 10,
                                                         "timeoutSeconds": 2, "successThreshold": 1, "failureThreshold": 3]]]
        let c = WriteForm.input(pod, resource: "pods")[path: "spec", "containers"]?.array?.first
        #expect(c?["readinessProbe"] == ["httpGet": ["path": "/healthz", "port": 8080], "periodSeconds": 5])
        #expect(c?["livenessProbe"] == ["tcpSocket": ["port": "http"], "initialDelaySeconds": 10, "timeoutSeconds": 2])
    }

    @Test func initContainersAreCleanedLikeContainers() {
        var pod = apiServedPod("p", labels: [:], node: nil, phase: "Pending")
        pod["spec"]?["initContainers"] = [["name": "init", "image": "busybox", "imagePullPolicy": "IfNotPresent", "resources": [:],
                                           "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"]]
        #expect(WriteForm.input(pod, resource: "pods")[path: "spec", "initContainers"] == [["name": "init", "image": "busybox"]])
    }

    @Test func aServedDeployment() {
        let d: JSON = [
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": ["name": "web", "namespace": "default", "uid": "u", "resourceVersion": "9", "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z",
                         "annotations": ["deployment.kubernetes.io/revision": "1"], "labels": ["team": "a"]],
            "spec": ["replicas": 2, "selector": ["matchLabels": ["app": "web"]],
                     "template": ["metadata": ["labels": ["app": "web"], "creationTimestamp": nil],
                                  "spec": apiServedPod("x", labels: [:], node: nil, phase: "Pending")["spec"]!],
                     "strategy": ["type": "RollingUpdate", "rollingUpdate": ["maxSurge": "25%", "maxUnavailable": "25%"]],
                     "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600],
            "status": ["observedGeneration": 2, "replicas": 2],
        ]
        #expect(WriteForm.input(d, resource: "deployments").text
            == #"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"labels":{"team":"a"},"name":"web","namespace":"default"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"args":["sleep","3600"],"image":"busybox","name":"c"}]}}}}"#)
        // A strategy of the user's stays.
        var recreate = d
        recreate["spec"]?["strategy"] = ["type": "Recreate"]
        recreate["spec"]?["revisionHistoryLimit"] = 3
        let spec = WriteForm.input(recreate, resource: "deployments")["spec"]
        #expect(spec?["strategy"] == ["type": "Recreate"])
        #expect(spec?["revisionHistoryLimit"] == 3)
    }

    @Test func aServedService() {
        let s: JSON = [
            "apiVersion": "v1", "kind": "Service",
            "metadata": ["name": "web", "namespace": "default", "uid": "u", "resourceVersion": "4", "creationTimestamp": "2026-01-01T00:00:00Z"],
            "spec": ["type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "internalTrafficPolicy": "Cluster", "externalTrafficPolicy": "Cluster", "sessionAffinity": "None",
                     "selector": ["app": "web"], "ports": [["port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080]]],
            "status": ["loadBalancer": [:]],
        ]
        #expect(WriteForm.input(s, resource: "services").text
            == #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},"spec":{"clusterIP":"10.96.0.20","ports":[{"nodePort":30080,"port":80,"protocol":"TCP","targetPort":8080}],"selector":{"app":"web"},"type":"NodePort"}}"#)
        var affinity = s
        affinity["spec"]?["sessionAffinity"] = "ClientIP"
        affinity["spec"]?["externalTrafficPolicy"] = "Local"
        let spec = WriteForm.input(affinity, resource: "services")["spec"]
        #expect(spec?["sessionAffinity"] == "ClientIP")
        #expect(spec?["externalTrafficPolicy"] == "Local")
    }

    @Test func aServedNamespace() {
        let ns: JSON = ["apiVersion": "v1", "kind": "Namespace",
                        "metadata": ["name": "team-a", "uid": "u", "labels": ["kubernetes.io/metadata.name": "team-a", "owner": "me"]],
                        "spec": ["finalizers": ["kubernetes"]], "status": ["phase": "Active"]]
        #expect(WriteForm.input(ns, resource: "namespaces").text == #"{"apiVersion":"v1","kind":"Namespace","metadata":{"labels":{"owner":"me"},"name":"team-a"}}"#)
    }
}

/// A cluster as its YAML describes it, every pod running and ready on its node, as the
/// supervisor's state file would record it.
func apiRunningState(_ spec: ClusterSpec) throws -> ClusterState {
    let enc = JSONEncoder()
    enc.dateEncodingStrategy = ClusterState.preciseDates
    let time = "2026-01-01T00:00:00.000000Z"
    let specObject = try JSONSerialization.jsonObject(with: enc.encode(spec))
    let nodes: [[String: Any]] = spec.nodes.map { n in
        ["name": n.name, "role": n.role.rawValue, "index": n.index, "netns": "minik-\(spec.name)-\(n.name)", "internalIP": n.internalIP.description,
         "podCIDR": n.podCIDR.description, "labels": n.labels, "createdAt": time]
    }
    var pods: [[String: Any]] = []
    for (i, p) in spec.pods.enumerated() {
        let node = spec.node(named: p.nodeName)
        let ip = (node?.podCIDR.network ?? IPv4Address(10, 244, 0, 0)).adding(UInt32(2 + i))
        func status(_ c: ContainerSpec, isInit: Bool) -> [String: Any] {
            var s: [String: Any] = ["name": c.name, "image": c.image, "isInit": isInit, "pid": 1000 + i, "startTime": 1, "restartCount": 0,
                                    "ready": !isInit, "startedAt": time]
            if isInit {
                s["state"] = "terminated"
                s["termination"] = ["exitCode": 0, "reason": "Completed", "startedAt": time, "finishedAt": time]
            } else {
                s["state"] = "running"
            }
            return s
        }
        var pod: [String: Any] = ["namespace": p.namespace, "name": p.name, "node": p.nodeName, "ip": ip.description, "netns": "minik-pod-\(i)",
                                  "pid": 1000 + i, "startTime": 1, "hostVeth": "veth\(i)", "createdAt": time, "phase": "Running", "labels": p.labels,
                                  "containers": p.initContainers.map { status($0, isInit: true) } + p.containers.map { status($0, isInit: false) },
                                  "events": [Any]()]
        if let owner = p.owner { pod["owner"] = owner }
        pods.append(pod)
    }
    let services: [[String: Any]] = try spec.services.map { s in
        ["spec": try JSONSerialization.jsonObject(with: enc.encode(s)), "endpoints": [Any](), "createdAt": time]
    }
    let state: [String: Any] = ["name": spec.name, "spec": specObject, "specFile": "lab.yaml", "supervisorPID": 1, "supervisorStartTime": 1,
                                "createdAt": time, "nodes": nodes, "pods": pods, "services": services, "proxy": [Any](), "savedAt": time]
    let dec = JSONDecoder()
    dec.dateDecodingStrategy = ClusterState.preciseDateParsing
    return try dec.decode(ClusterState.self, from: JSONSerialization.data(withJSONObject: state))
}

let roundTripYAML = """
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: lab
nodes:
- role: control-plane
- role: worker
- role: worker
---
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
  annotations: {note: hello}
spec:
  containers:
  - name: c
    image: busybox
    args: [sleep, "3600"]
    env: [{name: A, value: "1"}]
    ports: [{containerPort: 8080, name: http}]
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 5
---
apiVersion: v1
kind: Pod
metadata:
  name: tools
  namespace: team-a
spec:
  restartPolicy: Never
  initContainers:
  - name: init
    image: busybox
    command: [sh, -c, "true"]
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
  labels: {team: a}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: agnhost
        image: agnhost
        args: [netexec, --http-port=8080]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  type: NodePort
  selector: {app: echo}
  ports:
  - {name: http, port: 8080, targetPort: 8080, nodePort: 30080}

"""

@Suite("API write form: ObjectsView round trip")
struct APIRoundTripTests {
    let host = HostInfo(kernelVersion: "6.1.0", osImage: "Debian GNU/Linux 12 (bookworm)", bootID: "b", machineID: "m", cpus: 2, memoryKi: 4_000_000)

    func setUp() throws -> (spec: ClusterSpec, objects: [String: [ObjectKey: JSON]]) {
        let spec = try SpecLoader.parse(roundTripYAML, file: "lab.yaml")
        #expect(spec.warnings == [])
        let state = try apiRunningState(spec)
        return (spec, ObjectsView(state: state, host: host).all())
    }

    /// `p` without where it was written.
    func unplaced(_ p: PodSpec) -> PodSpec {
        var p = p
        let nowhere = SourceLocation(file: "", line: 0, column: 0, field: "")
        p.source = nowhere
        for i in p.containers.indices { p.containers[i].source = nil }
        for i in p.initContainers.indices { p.initContainers[i].source = nil }
        return p
    }

    /// `object` written back as the backend writes it: through WriteForm and the loader.
    func writeBack(_ object: JSON, _ resource: String, to spec: ClusterSpec) throws -> ClusterSpec {
        let name = object[path: "metadata", "name"]?.string ?? ""
        return try SpecLoader.apply(WriteForm.input(object, resource: resource).text, file: "\(resource)/\(name)", to: spec)
    }

    @Test func theViewHasEveryObject() throws {
        let (_, objects) = try setUp()
        func names(_ r: String) -> [String] { (objects[r] ?? [:]).keys.sorted().map(\.description) }
        #expect(names("namespaces").contains("namespaces/team-a"))
        // With the cluster DNS minik adds in kube-system.
        let pods = names("pods")
        #expect(pods.count == 6)
        #expect(pods.filter { $0.hasPrefix("pods/default/echo-") }.count == 2)
        #expect(pods.filter { $0.hasPrefix("pods/kube-system/minik-dns-") }.count == 2)
        #expect(pods.contains("pods/default/web") && pods.contains("pods/team-a/tools"))
        #expect(names("replicasets").count == 2)
        #expect(names("deployments") == ["deployments/default/echo", "deployments/kube-system/minik-dns"])
        #expect(names("services").contains("services/default/web"))
        #expect(names("services").contains("services/default/echo"))
    }

    @Test func podsWrittenBackAreTheSamePodsWithoutWarnings() throws {
        let (spec, objects) = try setUp()
        for key in [ObjectKey("pods", "default", "web"), ObjectKey("pods", "team-a", "tools")] {
            let object = try #require(objects["pods"]?[key])
            let out = try writeBack(object, "pods", to: spec)
            #expect(out.warnings == [], "\(key)")
            let before = try #require(spec.pods.first { $0.key == "\(key.namespace)/\(key.name)" })
            var after = try #require(out.pods.first { $0.key == before.key })
            // The node a pod runs on, read back, is not a request for it (ClusterAPI.write).
            if before.requestedNodeName == nil, after.requestedNodeName == before.nodeName { after.requestedNodeName = nil }
            #expect(unplaced(after) == unplaced(before), "\(key)")
        }
    }

    @Test func aDeploymentWrittenBackIsTheSameDeployment() throws {
        let (spec, objects) = try setUp()
        let object = try #require(objects["deployments"]?[ObjectKey("deployments", "default", "echo")])
        let out = try writeBack(object, "deployments", to: spec)
        #expect(out.warnings == [])
        let before = try #require(spec.deployments.first { $0.name == "echo" })
        var after = try #require(out.deployments.first { $0.name == "echo" })
        after.template = unplaced(after.template)
        var same = DeploymentSpec(namespace: before.namespace, name: before.name, replicas: before.replicas, selector: before.selector,
                                  template: unplaced(before.template), labels: before.labels, annotations: before.annotations)
        same.replicaSets = before.replicaSets
        same.created = before.created
        #expect(after == same)
        // The same template: the same ReplicaSet, so the same pods.
        #expect(after.newReplicaSet?.hash == before.newReplicaSet?.hash)
        #expect(out.pods.filter { $0.owner == "Deployment/echo" }.map(\.name) == spec.pods.filter { $0.owner == "Deployment/echo" }.map(\.name))
    }

    @Test func servicesWrittenBackAreTheSameServices() throws {
        let (spec, objects) = try setUp()
        for name in ["web", "echo"] {
            let object = try #require(objects["services"]?[ObjectKey("services", "default", name)])
            let out = try writeBack(object, "services", to: spec)
            #expect(out.warnings == [], "\(name)")
            let before = try #require(spec.services.first { $0.name == name })
            let after = try #require(out.services.first { $0.name == name })
            #expect(after.sameAs(before), "\(name): \(after) != \(before)")
        }
    }

    @Test func aNamespaceWrittenBackIsTheSameNamespace() throws {
        let (spec, objects) = try setUp()
        let object = try #require(objects["namespaces"]?[ObjectKey("namespaces", "", "team-a")])
        #expect(WriteForm.input(object, resource: "namespaces").text == #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team-a"}}"#)
        let out = try writeBack(object, "namespaces", to: spec)
        #expect(out.warnings == [])
        #expect(out.namespaces == spec.namespaces)
    }

    @Test func theServedPodsPrintAsKubectlShowsThem() throws {
        let (_, objects) = try setUp()
        let web = try #require(objects["pods"]?[ObjectKey("pods", "default", "web")])
        let cells = printCells("pods", web)
        #expect(Array(cells[0...3]) == ["web", "1/1", "Running", "0"])
        let tools = try #require(objects["pods"]?[ObjectKey("pods", "team-a", "tools")])
        #expect(Array(printCells("pods", tools)[0...2]) == ["tools", "1/1", "Running"])
    }
}
