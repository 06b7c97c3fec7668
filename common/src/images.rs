//! `images` and `rmi`: what the image store holds, and removing an image
//! with the layers that no other image has, as `docker images` and `docker
//! rmi` do. A layer that a running container holds (its shared flock, see
//! [`crate::image`]) is kept, and `rmi` says so; `cleanup` removes it later.

use std::path::PathBuf;

use anyhow::Result;

/// What `images` takes.
#[derive(clap::Args)]
pub struct Args {
    /// Where images are kept and extracted
    #[arg(long, value_name = "DIR", default_value = crate::IMAGE_DIR)]
    pub image_dir: PathBuf,
    /// Print only the names
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// What `rmi` takes.
#[derive(clap::Args)]
pub struct RmiArgs {
    /// Where images are kept and extracted
    #[arg(long, value_name = "DIR", default_value = crate::IMAGE_DIR)]
    pub image_dir: PathBuf,
    /// The image to remove: a NAME, or the PATH it was run from
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Lists the images: name (what `--image` takes), format, layers, size.
pub fn run(args: &Args) -> Result<i32> {
    crate::errors::require_root()?;
    let mut listed = crate::image::list(&args.image_dir)?;
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    // A path can be long: the column is as wide as the longest name.
    let width = listed.iter().map(|image| image.name.len() + 2).max().unwrap_or(0).max(16);
    if !args.quiet {
        println!("{:<width$}{:<13}{:<8}SIZE", "IMAGE", "FORMAT", "LAYERS");
    }
    for image in listed {
        match args.quiet {
            true => println!("{}", image.name),
            false => println!(
                "{:<width$}{:<13}{:<8}{}",
                image.name,
                image.format,
                image.layers,
                crate::image::human(image.size)
            ),
        }
    }
    Ok(0)
}

/// Removes each image named, and says what went and what stayed.
pub fn rmi(args: &RmiArgs) -> Result<i32> {
    crate::errors::require_root()?;
    for image in &args.images {
        for line in crate::image::remove(&args.image_dir, image)? {
            println!("{line}");
        }
    }
    Ok(0)
}
