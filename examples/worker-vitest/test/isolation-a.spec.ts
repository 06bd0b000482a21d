import { describe } from "vitest";
import { isolationSuite } from "./isolation";

describe("isolation (a)", () => isolationSuite("alice"));
