using ERCache;
using ERCache.OnnxRuntime;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers ONNX user towers with <c>AddERCache()</c>.</summary>
public static class OnnxERCacheBuilderExtensions
{
    /// <summary>The subsection of a model's settings this package reads (<c>ERCache:Models:{name}:Onnx</c>).</summary>
    private const string OnnxSection = "Onnx";

    /// <summary>
    /// Runs model <paramref name="name"/> with the ONNX file at <paramref name="path"/>; the other settings come from
    /// <c>ERCache:Models:&lt;name&gt;:Onnx</c> when present. The session is created and its shapes checked when the cache
    /// is built (at host start), and disposed with the container.
    /// </summary>
    /// <param name="builder">The ERCache builder.</param>
    /// <param name="name">The configured model's name.</param>
    /// <param name="path">The <c>.onnx</c> file; relative to the host's content root.</param>
    /// <param name="features">Writes each user's features into the model's input.</param>
    /// <returns>The builder, for chaining.</returns>
    public static IERCacheBuilder AddOnnxModel(this IERCacheBuilder builder, string name, string path, OnnxFeatureWriter features)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return builder.AddOnnxModel(name, features, path);
    }

    /// <summary>
    /// Runs model <paramref name="name"/> with the ONNX model that <c>ERCache:Models:&lt;name&gt;:Onnx</c> describes
    /// (<c>Path</c>, and optionally <c>Input</c>, <c>Output</c>, <c>IntraOpThreads</c>, <c>OptimizationLevel</c>).
    /// </summary>
    /// <param name="builder">The ERCache builder.</param>
    /// <param name="name">The configured model's name.</param>
    /// <param name="features">Writes each user's features into the model's input.</param>
    /// <returns>The builder, for chaining.</returns>
    public static IERCacheBuilder AddOnnxModel(this IERCacheBuilder builder, string name, OnnxFeatureWriter features) =>
        builder.AddOnnxModel(name, features, path: null);

    private static IERCacheBuilder AddOnnxModel(this IERCacheBuilder builder, string name, OnnxFeatureWriter features, string? path)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(features);
        string sectionPath = $"{builder.SectionPath}:Models:{name}:{OnnxSection}";
        return builder.AddModelSection(OnnxSection).AddModel(name, sp =>
        {
            var options = new OnnxModelOptions();
            try
            {
                sp.GetService<IConfiguration>()?.GetSection(sectionPath).Bind(options, o => o.ErrorOnUnknownConfiguration = true);
            }
            catch (InvalidOperationException ex)
            {
                throw new InvalidOperationException($"{sectionPath} does not bind: {ex.Message}", ex);
            }

            options.Path = path ?? options.Path;
            if (string.IsNullOrWhiteSpace(options.Path))
            {
                throw new InvalidOperationException($"{sectionPath}:Path is not set: model '{name}' needs the path of its .onnx file.");
            }

            if (options.IntraOpThreads <= 0)
            {
                throw new InvalidOperationException($"{sectionPath}:IntraOpThreads must be positive (got {options.IntraOpThreads}).");
            }

            if (!Path.IsPathRooted(options.Path))
            {
                string root = sp.GetService<IHostEnvironment>()?.ContentRootPath ?? AppContext.BaseDirectory;
                options.Path = Path.Combine(root, options.Path);
            }

            var models = sp.GetRequiredService<IOptions<ERCacheOptions>>().Value.Models;
            var model = models.FirstOrDefault(m => string.Equals(m.Key, name, StringComparison.OrdinalIgnoreCase)).Value
                ?? throw new InvalidOperationException($"AddOnnxModel names model '{name}', which is not configured.");
            return new OnnxEmbeddingInference(name, model.Dimensions, options, features);
        });
    }
}
