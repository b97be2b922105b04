export * from "./client";
export * from "./service";
export * from "./events";
export { crc32, partitionOf, uuidv7 } from "./ids";
