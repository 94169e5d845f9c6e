// Loaded between require.js and embed-amd.js on the pages that show widgets (_config.yml).
(function () {
  // The widget modules look for their icon fonts beside their own URL, which require.js
  // resolves against the page (book/@jupyter-widgets/...: 404). Resolve the bundled modules to
  // the folder of the vendored fonts beside this file (_static/widgets/).
  var here = document.currentScript.src.replace(/[^/]*$/, "") + "widgets/";
  var paths = {"@jupyter-widgets/html-manager/dist": here.slice(0, -1)};
  ["base", "base7", "controls", "controls7", "html-manager"].forEach(function (name) {
    paths["@jupyter-widgets/" + name] = here + name;
  });
  require.config({paths: paths});
  // ipywidgets typesets a widget's description with MathJax 2's MathJax.Hub.Queue; the book
  // loads MathJax 3, which has no Hub (TypeError in the console). Lend it one.
  document.addEventListener("DOMContentLoaded", function () {
    var mathjax = window.MathJax;
    if (mathjax && mathjax.typesetPromise && !mathjax.Hub) {
      mathjax.Hub = {Queue: function (job) { mathjax.typesetPromise([job[2]]); }};
    }
  });
})();
