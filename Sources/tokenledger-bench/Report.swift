import Foundation

/// A goal a figure is held to.
enum Target: Sendable {
    case atLeast(Double)
    case atMost(Double)

    func met(by value: Double) -> Bool {
        switch self {
        case .atLeast(let t): return value >= t
        case .atMost(let t): return value <= t
        }
    }
}

enum Unit: String, Sendable {
    case jobsPerSecond = "jobs/s"
    case ms
    case us = "µs"
    case s
    case mb = "MB"
    case count = ""
    case percent = "%"

    func format(_ v: Double) -> String {
        switch self {
        case .jobsPerSecond, .count: return Self.grouped(Int(v.rounded()))
        case .ms: return v < 10 ? String(format: "%.3f", v) : String(format: "%.1f", v)
        case .us: return String(format: "%.1f", v)
        case .s: return String(format: "%.2f", v)
        case .mb: return String(format: "%.1f", v)
        case .percent: return String(format: "%.1f", v)
        }
    }

    static func grouped(_ n: Int) -> String {
        let digits = Array(String(abs(n)))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        return (n < 0 ? "-" : "") + out
    }
}

/// One measured figure, with the machine load when it was taken.
struct Figure: Sendable {
    var scenario: String
    var name: String
    var value: Double
    var unit: Unit
    var target: Target?
    var note: String

    var valueText: String { unit.format(value) + (unit == .count ? "" : " " + unit.rawValue) }

    var targetText: String {
        guard let target else { return "" }
        switch target {
        case .atLeast(let t): return ">= " + unit.format(t) + " " + unit.rawValue
        case .atMost(let t): return "<= " + unit.format(t) + " " + unit.rawValue
        }
    }

    var verdict: String {
        guard let target else { return "" }
        return target.met(by: value) ? "met" : "MISSED"
    }
}

/// Every figure of a run: printed as a table after each scenario and at the end, and written
/// as a Markdown table (and JSON lines) when `--results` names a file.
final class Report: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var figures: [Figure] = []
    let resultsPath: String?
    var failures: [String] = []

    init(resultsPath: String?) { self.resultsPath = resultsPath }

    func add(_ scenario: String, _ name: String, _ value: Double, _ unit: Unit, target: Target? = nil, note: String = "") {
        let f = Figure(scenario: scenario, name: name, value: value, unit: unit, target: target, note: note)
        lock.lock(); figures.append(f); lock.unlock()
        print("  \(scenario) | \(name): \(f.valueText)\(f.target == nil ? "" : " (target \(f.targetText): \(f.verdict))")\(note.isEmpty ? "" : " [\(note)]")")
        fflush(nil)
    }

    /// A check that failed (a wrong balance, a failed verify, a lost reply): the run exits non-zero.
    func fail(_ message: String) {
        lock.lock(); failures.append(message); lock.unlock()
        print("  FAILED: \(message)")
        fflush(nil)
    }

    func log(_ message: String) {
        print("  \(message)")
        fflush(nil)
    }

    func table(of figures: [Figure]) -> String {
        let header = ["scenario", "figure", "value", "target", "", "note"]
        var rows = [header]
        for f in figures { rows.append([f.scenario, f.name, f.valueText, f.targetText, f.verdict, f.note]) }
        var widths = Array(repeating: 0, count: header.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        func line(_ r: [String]) -> String {
            "| " + r.enumerated().map { i, c in
                i == 2 ? String(repeating: " ", count: widths[i] - c.count) + c : c + String(repeating: " ", count: widths[i] - c.count)
            }.joined(separator: " | ") + " |"
        }
        var out = [line(rows[0])]
        out.append("|" + widths.enumerated().map { i, w in i == 2 ? String(repeating: "-", count: w + 1) + ":" : String(repeating: "-", count: w + 2) }.joined(separator: "|") + "|")
        for r in rows.dropFirst() { out.append(line(r)) }
        return out.joined(separator: "\n")
    }

    func printTable() {
        print("")
        print(table(of: figures))
        if !failures.isEmpty {
            print("")
            for f in failures { print("FAILED: \(f)") }
        }
        fflush(nil)
    }

    /// Writes the Markdown table (and, beside it, one JSON object per figure).
    func write(header: String) throws {
        guard let resultsPath else { return }
        var text = header + "\n\n" + table(of: figures) + "\n"
        if !failures.isEmpty { text += "\n" + failures.map { "FAILED: \($0)" }.joined(separator: "\n") + "\n" }
        try text.write(toFile: resultsPath, atomically: true, encoding: .utf8)
        var lines = ""
        for f in figures {
            let object: [String: Any] = ["scenario": f.scenario, "figure": f.name, "value": f.value, "unit": f.unit.rawValue,
                                         "target": f.targetText, "verdict": f.verdict, "note": f.note]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            lines += String(decoding: data, as: UTF8.self) + "\n"
        }
        try lines.write(toFile: resultsPath + ".jsonl", atomically: true, encoding: .utf8)
    }
}
