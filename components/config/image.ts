/** The image section: build runtime/ for the commit's dependencies, or pull a given image. */
import { SectionInput, show } from "./section";

export type ImageConfig = { kind: "build"; baseImage: string } | { kind: "pull"; name: string };

const IMAGE_PATTERN = /^(?!-)[A-Za-z0-9._/:@{}-]+$/;

export function parseImage({ values: v, problem }: SectionInput): ImageConfig {
  if (v.image) {
    if (!IMAGE_PATTERN.test(v.image))
      problem("image", `${show(v.image)} is not an image reference`);
    const unknownPlaceholder = /\{(?!fingerprint\})[^}]*\}/.exec(v.image);
    if (unknownPlaceholder) {
      problem("image", `unknown placeholder ${unknownPlaceholder[0]} (only {fingerprint} exists)`);
    }
    return { kind: "pull", name: v.image };
  }
  if (!IMAGE_PATTERN.test(v.baseImage) || v.baseImage.includes("{")) {
    problem("baseImage", `${show(v.baseImage)} is not an image reference`);
  }
  return { kind: "build", baseImage: v.baseImage };
}
