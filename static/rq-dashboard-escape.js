// rq-dashboard builds its pages with Underscore templates that print job fields with
// `<%= %>`, unescaped; those fields can hold what users chose (photo names, messages).
// Loaded before its scripts compile any template, this makes `<%= %>` escape like
// `<%- %>`, so every field is shown as text. (Its own pre-escaped fields then show
// entities, which is the safe side.)
_.templateSettings = {
  evaluate: /<%([\s\S]+?)%>/g,
  interpolate: /(.)^/g, // (never matches; one group, as Underscore counts them)
  escape: /<%[=-]([\s\S]+?)%>/g,
};
