import Foundation

/// HTML building for the console. Every value goes through `escape`: user ids, metadata and
/// dead letters are whatever producers sent.
enum HTML {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Bytes as text for display (invalid UTF-8 shown with replacement characters), escaped.
    static func escape(bytes: [UInt8]) -> String { escape(String(decoding: bytes, as: UTF8.self)) }

    /// A path component or query value, percent-encoded (then escaped where it goes in HTML).
    static func component(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    static func page(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>\(escape(title)) · TokenLedger console</title>
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
        header{background:#1b2a41;color:#fff;padding:10px 20px}header a{color:#fff;margin-right:16px;text-decoration:none}
        main{padding:16px 20px}table{border-collapse:collapse;background:#fff;margin:8px 0 16px}
        td,th{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;vertical-align:top}
        th{background:#eef1f5}pre{white-space:pre-wrap;word-break:break-all;margin:0;max-width:60em}
        .card{display:inline-block;background:#fff;border:1px solid #d5d9e0;padding:8px 12px;margin:0 8px 8px 0}
        .card b{display:block;font-size:20px}svg{background:#fff;border:1px solid #d5d9e0}
        form.inline{display:inline}button{cursor:pointer}
        </style></head><body>
        <header><a href="/console">Overview</a><a href="/console/dead">Dead letters</a><a href="/console/users">Users</a><a href="/console/month">Month</a></header>
        <main><h1>\(escape(title))</h1>
        \(body)
        </main></body></html>
        """
    }

    /// A bar chart as inline SVG: one bar per value, labelled below (every label escaped).
    /// `labels: false` leaves them out (a sparkline in a table cell); each bar still names itself.
    static func barChart(_ bars: [(label: String, value: Int64)], title: String, width: Int = 720, height: Int = 180,
                         labels: Bool = true) -> String {
        let top = max(1, bars.map(\.value).max() ?? 1)
        let n = max(1, bars.count)
        let left = labels ? 30.0 : 2, slot = (Double(width) - (labels ? 40 : 4)) / Double(n)
        let below = labels ? 40 : 2, above = labels ? 24 : 2
        var svg = "<svg role=\"img\" class=\"chart\" width=\"\(width)\" height=\"\(height + below)\" viewBox=\"0 0 \(width) \(height + below)\">"
        svg += "<title>\(escape(title))</title>"
        if labels { svg += "<text x=\"4\" y=\"14\" font-size=\"11\">max \(top)</text>" }
        for (i, bar) in bars.enumerated() {
            let h = Double(height - above) * Double(max(0, bar.value)) / Double(top)
            let x = left + Double(i) * slot
            svg += "<rect x=\"\(fmt(x))\" y=\"\(fmt(Double(height) - h))\" width=\"\(fmt(min(48, max(1, slot * 0.7))))\" height=\"\(fmt(h))\" fill=\"#3b6ea5\"><title>\(escape(bar.label)): \(bar.value)</title></rect>"
            if labels && n <= 31 {
                svg += "<text x=\"\(fmt(x))\" y=\"\(height + 14)\" font-size=\"9\">\(escape(bar.label))</text>"
            }
        }
        svg += "</svg>"
        return svg
    }

    /// Two series side by side per label (say credits against debits), with a legend.
    static func pairChart(_ bars: [(label: String, first: Int64, second: Int64)], names: (String, String), title: String,
                          width: Int = 720, height: Int = 180) -> String {
        let top = max(1, bars.map { max($0.first, $0.second) }.max() ?? 1)
        let n = max(1, bars.count)
        let slot = Double(width - 40) / Double(n)
        let bar = min(24, max(1, slot * 0.35))
        var svg = "<svg role=\"img\" class=\"chart\" width=\"\(width)\" height=\"\(height + 40)\" viewBox=\"0 0 \(width) \(height + 40)\">"
        svg += "<title>\(escape(title))</title><text x=\"4\" y=\"14\" font-size=\"11\">max \(top)</text>"
        svg += "<rect x=\"\(width - 200)\" y=\"4\" width=\"10\" height=\"10\" fill=\"#3b8a5a\"/><text x=\"\(width - 186)\" y=\"13\" font-size=\"11\">\(escape(names.0))</text>"
        svg += "<rect x=\"\(width - 110)\" y=\"4\" width=\"10\" height=\"10\" fill=\"#b5533c\"/><text x=\"\(width - 96)\" y=\"13\" font-size=\"11\">\(escape(names.1))</text>"
        for (i, b) in bars.enumerated() {
            let x = 30 + Double(i) * slot
            for (k, value, color) in [(0, b.first, "#3b8a5a"), (1, b.second, "#b5533c")] {
                let h = Double(height - 24) * Double(max(0, value)) / Double(top)
                svg += "<rect x=\"\(fmt(x + Double(k) * bar))\" y=\"\(fmt(Double(height) - h))\" width=\"\(fmt(bar))\" height=\"\(fmt(h))\" fill=\"\(color)\"><title>\(escape(b.label)) \(escape(k == 0 ? names.0 : names.1)): \(value)</title></rect>"
            }
            if n <= 31 { svg += "<text x=\"\(fmt(x))\" y=\"\(height + 14)\" font-size=\"9\">\(escape(b.label))</text>" }
        }
        return svg + "</svg>"
    }

    /// A line chart as inline SVG over points in time order.
    static func lineChart(_ points: [(x: Int64, y: Int64)], title: String, width: Int = 720, height: Int = 180) -> String {
        var svg = "<svg role=\"img\" class=\"chart\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\"><title>\(escape(title))</title>"
        guard let first = points.first, let last = points.last else { return svg + "<text x=\"8\" y=\"20\">no data</text></svg>" }
        let minY = min(0, points.map(\.y).min() ?? 0), maxY = max(1, points.map(\.y).max() ?? 1)
        let spanX = max(1, last.x - first.x)
        func px(_ p: (x: Int64, y: Int64)) -> String {
            let x = 30 + Double(width - 40) * Double(p.x - first.x) / Double(spanX)
            let y = Double(height - 10) - Double(height - 30) * Double(p.y - minY) / Double(max(1, maxY - minY))
            return "\(fmt(x)),\(fmt(y))"
        }
        svg += "<text x=\"4\" y=\"14\" font-size=\"11\">max \(maxY)</text>"
        svg += "<polyline fill=\"none\" stroke=\"#3b6ea5\" stroke-width=\"2\" points=\"\(points.map(px).joined(separator: " "))\"/>"
        return svg + "</svg>"
    }

    private static func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

    /// A form field carrying a hidden value.
    static func hidden(_ name: String, _ value: String) -> String {
        "<input type=\"hidden\" name=\"\(escape(name))\" value=\"\(escape(value))\">"
    }
}

/// `application/x-www-form-urlencoded` and query strings, decoded to raw bytes (ids are bytes).
enum FormData {
    static func parse(_ bytes: [UInt8]) -> [(name: String, value: [UInt8])] {
        var out: [(String, [UInt8])] = []
        for pair in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(decoding: decode(parts[0]), as: UTF8.self)
            out.append((name, parts.count > 1 ? decode(parts[1]) : []))
        }
        return out
    }

    static func decode(_ s: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c == UInt8(ascii: "+") {
                out.append(0x20)
            } else if c == UInt8(ascii: "%"), i + 2 < s.endIndex, let h = hex(s[i + 1]), let l = hex(s[i + 2]) {
                out.append(h << 4 | l)
                i += 2
            } else {
                out.append(c)
            }
            i += 1
        }
        return out
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}
