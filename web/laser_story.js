// Shows what the pack's nodes return for people to read: plan JSON and per-frame info as text on the node,
// and the animated GIF as an <img> (which animates; this frontend treats animated non-WEBP files as video).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const PACK_NODES = new Set([
  "LaserStoryLLMPlanner", "LaserStoryMorphInterpolator", "LaserStorySaveAnimatedGIF", "LaserStoryLocalCaptionExpander",
  "LaserStoryStoryMapper", "LaserStoryCharLDMSampler", "LaserStoryWorldCaption",
]);
const TEXT_WIDGET = "laser_story_result";
const GIF_WIDGET = "laser_story_gif";

function domWidget(node, name, element) {
  const existing = node.widgets?.find((w) => w.name === name);
  if (existing) return existing;
  const widget = node.addDOMWidget(name, "laser_story_view", element, { serialize: false, hideOnZoom: false });
  widget.serialize = false; // a view, not an input: never part of widgets_values or the API prompt
  const [width, height] = node.size;
  node.setSize([width, Math.max(height, node.computeSize()[1])]); // grow to show the view, never shrink
  app.graph.setDirtyCanvas(true, true);
  return widget;
}

function showText(node, lines) {
  const area = document.createElement("textarea");
  area.readOnly = true;
  area.className = "comfy-multiline-input laser-story-result";
  area.style.cssText = "width:100%;min-height:80px;font:11px monospace;opacity:0.9";
  const widget = domWidget(node, TEXT_WIDGET, area);
  widget.element.value = lines.join("\n\n");
}

function showGifs(node, files) {
  const img = document.createElement("img");
  img.className = "laser-story-gif";
  img.style.cssText = "width:100%;height:100%;object-fit:contain;image-rendering:pixelated";
  const widget = domWidget(node, GIF_WIDGET, img);
  const f = files[files.length - 1];
  const query = new URLSearchParams({ filename: f.filename, subfolder: f.subfolder, type: f.type, rand: Math.random() });
  widget.element.src = api.apiURL(`/view?${query}`);
}

app.registerExtension({
  name: "laser-story.results",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!PACK_NODES.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      if (output?.text?.length) showText(this, output.text);
      if (output?.gifs?.length) showGifs(this, output.gifs);
    };
  },
});
