import { describe } from "vitest";
import { isolationSuite } from "./isolation";

describe("isolation (b)", () => isolationSuite("bob"));
