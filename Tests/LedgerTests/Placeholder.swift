import XCTest
final class LedgerPlaceholderTests: XCTestCase { func testNothing() {} }
