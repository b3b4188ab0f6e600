// Where a pod may run: tolerations of the control-plane's taint. As kind does, the
// control-plane node of a cluster with workers carries the taint
// node-role.kubernetes.io/control-plane:NoSchedule, so pods go to workers unless they
// name the node (nodeName) or tolerate the taint, as kube-system's own pods do. Pods
// pick the control-plane with a nodeSelector on its label and a toleration, the way a
// Kubernetes manifest says it; other taints do not exist in minik.

/// One entry of spec.tolerations.
public struct Toleration: Codable, Sendable, Equatable {
    public var key: String?
    /// "Equal" (the default) or "Exists".
    public var `operator`: String
    public var value: String?
    /// "NoSchedule", "PreferNoSchedule", "NoExecute", or nil for every effect.
    public var effect: String?

    public init(key: String?, operator op: String = "Equal", value: String? = nil, effect: String? = nil) {
        self.key = key
        self.operator = op
        self.value = value
        self.effect = effect
    }

    /// Kubernetes' ToleratesTaint: an empty key with Exists tolerates every taint.
    public func tolerates(key taintKey: String, value taintValue: String = "", effect taintEffect: String) -> Bool {
        if let effect, !effect.isEmpty, effect != taintEffect { return false }
        if let key, !key.isEmpty, key != taintKey { return false }
        if key == nil || key!.isEmpty { return self.operator == "Exists" }
        return self.operator == "Exists" || (value ?? "") == taintValue
    }
}

extension PodSpec {
    /// The control-plane taint of a cluster with workers.
    public static let controlPlaneTaint = "node-role.kubernetes.io/control-plane"

    public var toleratesControlPlane: Bool {
        tolerations.contains { $0.tolerates(key: Self.controlPlaneTaint, effect: "NoSchedule") }
    }
}

extension Builder {
    /// spec.tolerations, checked as the API server checks them.
    func tolerations(_ y: YNode?) -> [Toleration] {
        var out: [Toleration] = []
        for item in r.sequence(y) ?? [] {
            guard let f = r.mapping(item, "a toleration", known: ["key", "operator", "value", "effect", "tolerationSeconds"]) else { continue }
            let key = r.string(f["key"])
            let op = r.string(f["operator"]) ?? "Equal"
            let value = r.string(f["value"])
            let effect = r.string(f["effect"])
            if !["Equal", "Exists"].contains(op) { r.fail(f["operator"], "operator \"\(op)\" is not valid (use Equal or Exists)") }
            if op == "Exists", let value, !value.isEmpty { r.fail(f["value"], "value must be empty when operator is Exists") }
            if (key ?? "").isEmpty && op != "Exists" { r.fail(f["operator"] ?? item, "operator must be Exists when key is empty") }
            if let effect, !["", "NoSchedule", "PreferNoSchedule", "NoExecute"].contains(effect) {
                r.fail(f["effect"], "effect \"\(effect)\" is not valid (use NoSchedule, PreferNoSchedule or NoExecute)")
            }
            if f["tolerationSeconds"] != nil && effect != "NoExecute" {
                r.fail(f["tolerationSeconds"], "tolerationSeconds is only for effect NoExecute")
            }
            out.append(Toleration(key: key, operator: op, value: value, effect: effect))
        }
        return out
    }
}
