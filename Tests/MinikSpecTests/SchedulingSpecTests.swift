// Tolerations of the control-plane's taint, and the example cluster under another name.
import Foundation
import MinikSpec
import Testing

@Suite("Scheduling: the control-plane taint and tolerations")
struct SchedulingSpecTests {
    func onControlPlane(_ tolerations: String) -> String {
        clusterHeader + """
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: edge}
        spec:
          nodeSelector: {node-role.kubernetes.io/control-plane: ""}
        \(tolerations.isEmpty ? "" : "  tolerations: \(tolerations)")
          containers:
          - {name: c, image: busybox}

        """
    }

    @Test("a pod that tolerates the taint and selects the control-plane's label runs there; without it, nowhere")
    func tolerations() throws {
        for t in ["[{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]",
                  "[{key: node-role.kubernetes.io/control-plane, operator: Exists}]", "[{operator: Exists}]"] {
            let spec = try SpecLoader.parse(onControlPlane(t), file: "cluster.yaml")
            #expect(spec.pods.first { $0.name == "edge" }?.nodeName == "lab-control-plane", "\(t)")
        }
        let untolerated = onControlPlane("")
        expectRejected(untolerated, field: "metadata", line: line(of: "metadata: {name: edge}", in: untolerated), saying: "no node matches nodeSelector")
        let otherEffect = onControlPlane("[{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoExecute}]")
        expectRejected(otherEffect, field: "metadata", line: line(of: "metadata: {name: edge}", in: otherEffect), saying: "no node matches nodeSelector")
        // Tolerating is not selecting: without the nodeSelector it may still go to a worker.
        let worker = try SpecLoader.parse(clusterHeader + pod("w"), file: "cluster.yaml")
        #expect(worker.pods.first { $0.name == "w" }?.nodeName != "lab-control-plane")
    }

    @Test("bad tolerations are refused with their place")
    func badTolerations() {
        let op = onControlPlane("[{key: k, operator: Maybe}]")
        expectRejected(op, field: "spec.tolerations[0].operator", line: line(of: "Maybe", in: op), saying: "operator \"Maybe\" is not valid", count: 2) // and no node for it
        let effect = onControlPlane("[{key: k, operator: Exists, effect: Sometimes}]")
        expectRejected(effect, field: "spec.tolerations[0].effect", line: line(of: "Sometimes", in: effect), saying: "effect \"Sometimes\" is not valid", count: 2)
        let value = onControlPlane("[{key: k, operator: Exists, value: v}]")
        expectRejected(value, field: "spec.tolerations[0].value", line: line(of: "value: v", in: value), saying: "value must be empty", count: 2)
    }

    @Test("the example cluster works under any name: pods choose nodes by label, not by name")
    func exampleRenamed() throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/cluster.yaml")
        let text = try String(contentsOf: example, encoding: .utf8)
        #expect(!text.contains("nodeName"), "the example names a node")
        let renamed = text.replacingOccurrences(of: "\nname: lab\n", with: "\nname: workshop\n")
        let spec = try SpecLoader.parse(renamed, file: "cluster.yaml")
        #expect(spec.name == "workshop")
        #expect(spec.pods.first { $0.name == "client" }?.nodeName == "workshop-control-plane")
    }
}
