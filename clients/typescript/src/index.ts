export * from "./codes";
export * from "./errors";
export * from "./client";
export * from "./service";
export * from "./events";
export { Fields, readReply } from "./shape";
export { crc32, partitionOf, uuidv7 } from "./ids";
