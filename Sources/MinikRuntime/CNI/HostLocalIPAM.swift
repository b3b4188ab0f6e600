// host-local IPAM, as the CNI plugin of that name does it: one directory per node's
// range, one file per allocated address (named by the address, holding the owner), and
// last_reserved_ip.0 so allocation continues round-robin after the last address handed
// out instead of reusing a just-freed one at once. Because it lives in files under the
// cluster's state directory, allocations survive a supervisor restart.
import Foundation
import MinikSpec

public enum IPAMError: Error, CustomStringConvertible, Equatable {
    case exhausted(range: String, capacity: Int)
    case io(String)

    public var description: String {
        switch self {
        case .exhausted(let r, let c): return "no free address in \(r) (all \(c) in use)"
        case .io(let m): return "IPAM: \(m)"
        }
    }
}

/// The allocation rules, without files: which addresses may be given and which next.
public struct IPAMPool: Sendable {
    public let range: IPv4CIDR
    /// owner -> address
    public private(set) var allocations: [String: IPv4Address] = [:]
    private var used: Set<IPv4Address> = []
    public private(set) var lastReserved: IPv4Address?

    public init(range: IPv4CIDR) { self.range = range }

    /// The gateway (cni0's address): the first address of the range.
    public var gateway: IPv4Address { range.address(1) }
    /// Usable pod addresses: not the network, the gateway or the broadcast address.
    public var first: IPv4Address { range.address(2) }
    public var last: IPv4Address { IPv4Address(range.broadcast.value - 1) }
    public var capacity: Int { Int(last.value) - Int(first.value) + 1 }

    public func isAssignable(_ a: IPv4Address) -> Bool { a >= first && a <= last }

    /// Records an existing allocation (read back from disk).
    public mutating func restore(owner: String, address: IPv4Address) {
        allocations[owner] = address
        used.insert(address)
    }

    public mutating func restoreLastReserved(_ a: IPv4Address) { lastReserved = a }

    /// The owner's address; an owner that has one keeps it.
    public mutating func allocate(owner: String) throws(IPAMError) -> IPv4Address {
        if let a = allocations[owner] { return a }
        guard used.count < capacity else { throw .exhausted(range: range.description, capacity: capacity) }
        var candidate = lastReserved.map { $0 >= last || $0 < first ? first : $0.adding(1) } ?? first
        while used.contains(candidate) {
            candidate = candidate >= last ? first : candidate.adding(1)
        }
        allocations[owner] = candidate
        used.insert(candidate)
        lastReserved = candidate
        return candidate
    }

    @discardableResult
    public mutating func release(owner: String) -> IPv4Address? {
        guard let a = allocations.removeValue(forKey: owner) else { return nil }
        used.remove(a)
        return a
    }
}

/// IPAMPool persisted in a directory, one file per address.
public final class HostLocalIPAM: @unchecked Sendable {
    public let directory: String
    private var pool: IPAMPool
    private let lock = NSLock()
    /// last_reserved_ip.0 is written by flush(), once per batch: rewriting it on every
    /// allocation cost more than everything else IPAM does (a truncating rewrite forces
    /// a block allocation on ext4).
    private var dirty = false
    static let lastReservedFile = "last_reserved_ip.0"

    /// Opens (creating it if needed) the allocation directory of a range and reads back
    /// every allocation already recorded there.
    public init(directory: String, range: IPv4CIDR) throws(IPAMError) {
        self.directory = directory
        pool = IPAMPool(range: range)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
                let path = "\(directory)/\(name)"
                if name == HostLocalIPAM.lastReservedFile {
                    if let s = try? String(contentsOfFile: path, encoding: .utf8), let a = IPv4Address(s.trimmingCharacters(in: .whitespacesAndNewlines)) {
                        pool.restoreLastReserved(a)
                    }
                } else if let a = IPv4Address(name), range.contains(a),
                          let owner = try? String(contentsOfFile: path, encoding: .utf8) {
                    pool.restore(owner: owner.trimmingCharacters(in: .whitespacesAndNewlines), address: a)
                }
            }
        } catch {
            throw .io("cannot read \(directory): \(error.localizedDescription)")
        }
        if pool.lastReserved == nil, let highest = pool.allocations.values.max() {
            pool.restoreLastReserved(highest) // crashed before a flush
        }
    }

    public var gateway: IPv4Address { pool.gateway }
    public var allocations: [String: IPv4Address] {
        lock.lock(); defer { lock.unlock() }
        return pool.allocations
    }

    public func allocate(owner: String) throws(IPAMError) -> IPv4Address {
        lock.lock(); defer { lock.unlock() }
        let isNew = pool.allocations[owner] == nil
        let a = try pool.allocate(owner: owner)
        if isNew {
            guard write("\(directory)/\(a)", owner, exclusive: true) else {
                pool.release(owner: owner)
                throw .io("cannot record \(a) for \(owner) in \(directory)")
            }
            dirty = true
        }
        return a
    }

    /// Records the round-robin position (last_reserved_ip.0).
    public func flush() {
        lock.lock(); defer { lock.unlock() }
        guard dirty, let last = pool.lastReserved else { return }
        if write("\(directory)/\(HostLocalIPAM.lastReservedFile).tmp", last.description, exclusive: false) {
            rename("\(directory)/\(HostLocalIPAM.lastReservedFile).tmp", "\(directory)/\(HostLocalIPAM.lastReservedFile)")
        }
        dirty = false
    }

    public func release(owner: String) {
        lock.lock(); defer { lock.unlock() }
        if let a = pool.release(owner: owner) {
            unlink("\(directory)/\(a)")
        }
    }

    private func write(_ path: String, _ text: String, exclusive: Bool) -> Bool {
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC)
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
    }
}
